"""The filter parameters of the REST API (``after``, ``before``, ``camera``, ``label``,
``folder``): as query parameters for GET endpoints and as form fields for the upload search,
both parsed by :meth:`service.filters.SearchFilters.parse` (a bad value is a 400)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query

from service.filters import SearchFilters

AFTER = "Only images taken on or after this date (2024, 2024-06, 2024-06-01 or ISO date-time)"
BEFORE = "Only images taken before this date (same forms as after)"
CAMERA = "Only images whose camera ('Make Model') has these words (e.g. canon, eos 5d)"
LABEL = "Only images with this label word (e.g. dog, animal, espresso)"
FOLDER = "Only images somewhere below this absolute folder"


def query_filters(
    after: Annotated[str | None, Query(description=AFTER)] = None,
    before: Annotated[str | None, Query(description=BEFORE)] = None,
    camera: Annotated[str | None, Query(description=CAMERA)] = None,
    label: Annotated[str | None, Query(description=LABEL)] = None,
    folder: Annotated[str | None, Query(description=FOLDER)] = None,
) -> SearchFilters:
    return SearchFilters.parse(after, before, camera, label, folder)


def form_filters(
    after: Annotated[str | None, Form(description=AFTER)] = None,
    before: Annotated[str | None, Form(description=BEFORE)] = None,
    camera: Annotated[str | None, Form(description=CAMERA)] = None,
    label: Annotated[str | None, Form(description=LABEL)] = None,
    folder: Annotated[str | None, Form(description=FOLDER)] = None,
) -> SearchFilters:
    return SearchFilters.parse(after, before, camera, label, folder)
