"""`python -m newsletter.i18n`: extract marked strings, update every .po, compile the .mo."""

from newsletter.i18n.catalogues import update

update()
