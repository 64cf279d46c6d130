"""The app shell: the page at / and the files that make it installable."""
from __future__ import annotations

from quart import Blueprint, current_app, redirect, render_template, request

from ..auth import current_principal, public

blueprint = Blueprint("pwa", __name__)


@blueprint.get("/")
@public  # anonymous visitors are sent to the login page
async def get_app():
    principal = await current_principal()
    if principal is None:
        return redirect("/account/login", 303)
    settings = current_app.config["CLOUDBUFFER"]
    return await render_template("pwa/app.html", principal=principal,
                                 max_upload_bytes=settings["MAX_UPLOAD_BYTES"],
                                 max_text_bytes=settings["MAX_TEXT_BYTES"])
