"""Message building, rendering and the SMTP transport."""
