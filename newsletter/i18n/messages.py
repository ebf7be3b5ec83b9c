"""Messages shown on public pages that are written in modules outside this package's reach
(the app's generic error handlers, Starlette's own details): marked here so that the
catalogues carry them; error_page translates whatever title and message it is given."""

from newsletter.i18n import N_

GENERIC = (
    N_("Page not found"),
    N_("Not Found"),
    N_("Not allowed"),
    N_("Method Not Allowed"),
    N_("Error"),
    N_("Something went wrong"),
    N_("Please try again in a moment."),
)
