"""Media and Mark are NamedTuples (cheap to build on the strategies' hot path); they must still
be immutable value objects built by keyword and positional arguments."""

from __future__ import annotations

import inspect

import pytest

from labkit.outbound.base import Mark, Media


def test_media_and_mark_are_immutable_records() -> None:
    mark = Mark("m1.g0", "item", 0, start=0, end=160, generation=0, sent_ms=5.0)
    media = Media(b"\xff" * 160, "item", 0, offset=0, generation=0, marks=(mark,))
    assert (mark.size, media.end, media.is_marks_only) == (160, 160, False)
    assert Media(b"", "item", 0, 160, 0).marks == ()
    assert media._replace(offset=1) == Media(b"\xff" * 160, "item", 0, 1, 0, (mark,))
    assert hash(mark) == hash(Mark("m1.g0", "item", 0, 0, 160, 0, 5.0))
    for message, field in ((mark, "end"), (media, "payload")):
        with pytest.raises(AttributeError):
            setattr(message, field, None)


@pytest.mark.parametrize("cls", [Mark, Media])
def test_constructor_parameters_are_the_fields(cls: type) -> None:
    fields = list(cls._fields)  # type: ignore[attr-defined]
    assert list(inspect.signature(cls).parameters) == fields
    with pytest.raises(TypeError):
        cls(*range(len(fields) + 1))
