/** Page objects: what a customer can do on each page, in the customer's words. */
import { expect, type Page } from '@playwright/test';

export class Shop {
  constructor(private readonly page: Page) {}

  async open() {
    await this.page.goto('/');
    await expect(this.page.getByTestId('catalog').getByRole('listitem').first()).toBeVisible();
  }

  async add(productId: string, times = 1) {
    for (let i = 0; i < times; i++) await this.page.getByTestId(`add-${productId}`).click();
    await expect(this.page.getByTestId(`in-cart-${productId}`)).toContainText(`${times} in cart`);
  }
}

export class Checkout {
  constructor(private readonly page: Page) {}

  get pay() {
    return this.page.getByTestId('pay');
  }

  async open() {
    await this.page.getByTestId('nav-checkout').click();
    await expect(this.page.getByRole('heading', { name: 'Checkout' })).toBeVisible();
  }

  /** Places the order and returns the id the confirmation page shows. */
  async placeOrder(): Promise<string> {
    await this.pay.click();
    return new Confirmation(this.page).orderId();
  }
}

export class Confirmation {
  constructor(private readonly page: Page) {}

  async orderId(): Promise<string> {
    const id = this.page.getByTestId('order-id');
    await expect(id).toHaveText(/^[0-9a-f-]{36}$/);
    return (await id.textContent())!;
  }
}

export class History {
  constructor(private readonly page: Page) {}

  async open() {
    await this.page.goto('/orders');
    await expect(this.page.getByRole('heading', { name: 'Your orders' })).toBeVisible();
  }

  rows() {
    return this.page.getByTestId('order-row');
  }
}
