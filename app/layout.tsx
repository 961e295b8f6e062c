import type { Metadata } from 'next';
import type { ReactNode } from 'react';
import { CartProvider } from './components/cart';
import { Header } from './components/header';
import { TRPCReactProvider } from './components/trpc';
import './globals.css';

// Each page names itself with its own <title> (the shop, the checkout, an order, the lab).
export const metadata: Metadata = {
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
