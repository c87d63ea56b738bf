"""The report as one self-contained HTML page: each team's PNG embedded as a data URI, with
its summary lines, for people who are not in the chat."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from chat_rescue.reports.making import Picture

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:760px;margin:1em auto;"
          "padding:0 1em;color:#1a202c}img{width:100%;height:auto}"
          "pre{white-space:pre-wrap;background:#f7fafc;padding:.8em;border-radius:6px}")


def page(pictures: Sequence[Picture], title: str = "chat-rescue report") -> str:
    """A page with every picture and its text, nothing fetched from anywhere."""
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for picture in pictures:
        data = base64.b64encode(picture.png).decode("ascii")
        team = html.escape(picture.report.team)
        parts += [f"<section><h2>{team}</h2>", f"<pre>{html.escape(picture.text)}</pre>",
                  f"<img alt=\"charts of {team}\" src=\"data:image/png;base64,{data}\">",
                  "</section>"]
    parts.append("</body></html>")
    return "\n".join(parts)
