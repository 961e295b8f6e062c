ALTER TABLE "webhook_events" ADD COLUMN "order_id" uuid;--> statement-breakpoint
ALTER TABLE "webhook_events" ADD COLUMN "detail" text;--> statement-breakpoint
ALTER TABLE "webhook_events" ADD CONSTRAINT "webhook_events_outcome" CHECK ("webhook_events"."outcome" in ('applied', 'stale', 'unrelated', 'mismatch'));--> statement-breakpoint
ALTER TABLE "webhook_events" ADD CONSTRAINT "webhook_events_detail_length" CHECK (char_length("webhook_events"."detail") <= 1000);