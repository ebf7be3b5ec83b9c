"""Preflight: what would make a digest fail at the readers' end, found before it is sent.

`newsletter digest preflight --list SLUG` (and `GET /api/lists/{slug}/preflight`) reports
one Finding per check; `digest send` and `POST /api/sends` run it first and send nothing
when a finding blocks (`--skip-preflight` / `"skip_preflight": true` overrides).

What blocks, and why:

- The message itself, in every environment: List-Unsubscribe without an unsubscribe URL
  under BASE_URL whose token verifies, a mailto, or List-Unsubscribe-Post One-Click; a
  one-click route that the running web app answers wrongly; no visible unsubscribe link in
  the HTML or the text part; HTML over Gmail's clip (the footer with the unsubscribe link
  is what gets hidden); a malformed link; a SpamAssassin score at or over its 5.0 spam
  threshold. These are wrong for every reader whatever the DNS says, and fixing them is
  the operator's job before the mail leaves, never after.
- DNS (SPF, DKIM, DMARC alignment) only when the deployment says it sends for real: in
  production (NEWSLETTER_ENV=production) or once a DKIM key is configured. Then a
  published DKIM key that differs from the configured one (every signature fails), a
  missing DKIM record, no SPF or more than one SPF record (a permanent error, RFC 7208
  4.5), or a From domain aligned with neither the DKIM d= nor the bounce domain blocks.
  With no DKIM key in development (the embedded default) they are warnings: nothing is
  published yet and a local catcher receives the mail.
- Always warnings: no DMARC record (receivers fall back to their own policy; the finding
  gives the record to add), SPF ending in +all or without -all/~all, a DNS server that did
  not answer (nothing was learnt, so nothing is claimed; the finding says which server),
  a web app that does not answer at BASE_URL from here, a SpamAssassin score over 2.5,
  and in development an http:// unsubscribe URL (production: blocking, providers ignore
  one-click over http).

Without NEWSLETTER_DNS_SERVER the machine's resolver is asked, except for reserved names
(example.com, *.test, localhost … RFC 2606/6761), which have nothing published to check.
"""
