'use client';
import Link from 'next/link';
import { useCart } from './cart';

export function Header() {
  const { lines } = useCart();
  const count = lines.reduce((n, l) => n + l.quantity, 0);
  return (
    <header className="header">
      <Link href="/" className="brand">
        Retry-safe coffee
      </Link>
      <nav aria-label="Main">
        <Link href="/">Shop</Link>
        <Link href="/checkout" data-testid="nav-checkout">
          Checkout ({count})
        </Link>
        <Link href="/orders">Your orders</Link>
        <Link href="/lab">Lab</Link>
      </nav>
    </header>
  );
}
