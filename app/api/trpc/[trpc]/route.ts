/** The one HTTP entry point of the API (server/http.ts does the work). */
import { handleApiRequest } from '@/server/http';

export { handleApiRequest as GET, handleApiRequest as POST };
