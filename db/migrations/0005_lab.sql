CREATE TABLE "lab_cart_lines" (
	"customer_id" uuid NOT NULL,
	"product_id" text NOT NULL,
	"quantity" integer NOT NULL,
	CONSTRAINT "lab_cart_lines_customer_id_product_id_pk" PRIMARY KEY("customer_id","product_id")
);
--> statement-breakpoint
CREATE TABLE "lab_customers" (
	"id" uuid PRIMARY KEY NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "lab_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"scenario" text NOT NULL,
	"variant" text NOT NULL,
	"customers" json NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"timeline" json DEFAULT '[]'::json NOT NULL,
	"verdict" json,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
