"""Images for e-mail: fetched once, checked, resized, stored, referenced with size and alt."""
