'use client';
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';
/**
 * The cart lives in the browser only, in sessionStorage: one cart per tab, kept across reloads.
 * It holds product ids and quantities, never prices: the server prices every order.
 */
import { MAX_QUANTITY } from '@/shared/shop-rules';

export interface CartLine {
  productId: string;
  quantity: number;
}

interface CartApi {
  lines: CartLine[];
  /** False until the cart has been read from sessionStorage (the server render has no cart). */
  ready: boolean;
  add(productId: string): void;
  setQuantity(productId: string, quantity: number): void;
  remove(productId: string): void;
  clear(): void;
}

const STORAGE_KEY = 'cart';
const CartContext = createContext<CartApi | null>(null);

export function CartProvider({ children }: { children: ReactNode }) {
  const [lines, setLines] = useState<CartLine[]>([]);
  const [ready, setReady] = useState(false);

  useEffect(() => {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? '[]') as CartLine[];
      if (Array.isArray(saved)) setLines(saved);
    } catch {
      sessionStorage.removeItem(STORAGE_KEY); // a damaged cart is dropped, not fatal
    }
    setReady(true);
  }, []);

  const update = useCallback((next: (prev: CartLine[]) => CartLine[]) => {
    setLines((prev) => {
      const value = next(prev);
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(value));
      return value;
    });
  }, []);

  const api = useMemo<CartApi>(
    () => ({
      lines,
      ready,
      add: (productId) =>
        update((prev) =>
          prev.some((l) => l.productId === productId)
            ? prev.map((l) =>
                l.productId === productId ? { ...l, quantity: Math.min(l.quantity + 1, MAX_QUANTITY) } : l,
              )
            : [...prev, { productId, quantity: 1 }],
        ),
      setQuantity: (productId, quantity) =>
        update((prev) => prev.map((l) => (l.productId === productId ? { ...l, quantity } : l))),
      remove: (productId) => update((prev) => prev.filter((l) => l.productId !== productId)),
      clear: () => update(() => []),
    }),
    [lines, ready, update],
  );
  return <CartContext.Provider value={api}>{children}</CartContext.Provider>;
}

export function useCart(): CartApi {
  const api = useContext(CartContext);
  if (!api) throw new Error('useCart must be used inside <CartProvider>');
  return api;
}
