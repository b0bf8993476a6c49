"""What the server's input checks let through, without a server: URLs under the allowed prefixes only."""

from __future__ import annotations

import pytest

from mammolibs.serve.inputs import BadInput, Limits, check_url


@pytest.mark.parametrize(
    "url",
    [
        "file:///allowed/../etc/passwd",
        "file:///allowed/../x://y",  # a second scheme must not hide the '..' before it
        "file:///allowed/./x.png",
        "file:///allowed/a//b.png",
        "file:///allowed/x.png/..",
        "gs://bucket/allowed/../x://y/z.png",
        "file:///allowed\\..\\etc\\passwd",
        "file:///allowed-not/x.png",
        "gs://bucket/allowed/x.png",  # another scheme than the prefix's
    ],
)
def test_urls_that_leave_or_disguise_the_allowed_prefix_are_refused(url):
    with pytest.raises(BadInput) as refused:
        check_url(url, Limits(url_prefixes=("file:///allowed/",)))
    assert refused.value.status == 403 and "\n" not in str(refused.value)


def test_a_plain_url_under_the_prefix_is_read():
    assert check_url("file:///allowed/scans/x.png", Limits(url_prefixes=("file:///allowed",))) == (
        "file:///allowed/scans/x.png"
    )
