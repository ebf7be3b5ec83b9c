"""Images for e-mail: fetched once, checked, resized, stored, referenced with size and alt.

- attach.py: attach_lead_image(session, settings, story) -> warning or None (never raises)
- fetch.py: fetch_image(session, settings, url) -> Media; the bounded download; ImageRefused
- process.py: Pillow over bytes: checks, upright, metadata stripped, 1x/2x JPEG or PNG
- store.py: MediaStore (FolderStore, S3Store) and store_for(settings)
- names.py: the file names the store writes and /media/{name} serves
- entry.py: a story's image as the digest templates show it
"""
