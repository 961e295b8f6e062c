/**
 * The catalog. Idempotent: an upsert by product id, so it runs on every start and leaves the same
 * rows whether the table was empty, already seeded, or seeded with older prices.
 */
import { sql as raw } from 'drizzle-orm';
import { createDatabase } from './client';
import { type Product, products } from './schema';

export const catalog: Product[] = [
  {
    id: 'espresso-beans',
    name: 'Espresso beans',
    description: '1 kg of dark roast, whole bean.',
    priceCents: 2400,
    currency: 'USD',
    soldOut: false,
  },
  {
    id: 'pour-over-kit',
    name: 'Pour-over kit',
    description: 'Ceramic dripper, 100 filters and a scoop.',
    priceCents: 3850,
    currency: 'USD',
    soldOut: false,
  },
  {
    id: 'burr-grinder',
    name: 'Burr grinder',
    description: 'Hand grinder with 40 settings.',
    priceCents: 8999,
    currency: 'USD',
    soldOut: false,
  },
  {
    id: 'travel-mug',
    name: 'Travel mug',
    description: 'Insulated, 350 ml, leak-proof lid.',
    priceCents: 1995,
    currency: 'USD',
    soldOut: false,
  },
  {
    id: 'milk-frother',
    name: 'Milk frother',
    description: 'Battery whisk with a stand.',
    priceCents: 1250,
    currency: 'USD',
    soldOut: false,
  },
  // Always sold out: ordering it is a business failure (409), stored and replayed with its key.
  {
    id: 'cold-brew-tower',
    name: 'Cold brew tower',
    description: 'Glass drip tower, 8 cups. Back next season.',
    priceCents: 24900,
    currency: 'USD',
    soldOut: true,
  },
];

export async function seedCatalog(url: string): Promise<void> {
  const { db, sql } = createDatabase(url, { max: 1 });
  try {
    await db
      .insert(products)
      .values(catalog)
      .onConflictDoUpdate({
        target: products.id,
        set: {
          name: raw`excluded.name`,
          description: raw`excluded.description`,
          priceCents: raw`excluded.price_cents`,
          currency: raw`excluded.currency`,
          soldOut: raw`excluded.sold_out`,
        },
      });
  } finally {
    await sql.end();
  }
}
