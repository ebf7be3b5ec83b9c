"""/console: the dashboard."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from newsletter.web.console.core import SignedIn, render

router = APIRouter()


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, current: SignedIn) -> HTMLResponse:
    return render(request, "dashboard.html")
