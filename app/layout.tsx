import type { Metadata } from 'next';
import type { ReactNode } from 'react';
import { CartProvider } from './components/cart';
import { Header } from './components/header';
import { TRPCReactProvider } from './components/trpc';
import './globals.css';

export const metadata: Metadata = {
  title: 'Retry-safe checkout',
  description: 'A checkout that double-clicks, lost responses, retries and crashes cannot charge twice.',
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <TRPCReactProvider>
          <CartProvider>
            <Header />
            <main>{children}</main>
          </CartProvider>
        </TRPCReactProvider>
      </body>
    </html>
  );
}
