from hypothesis import given
from hypothesis import strategies as st

from pipeline.redact import redact_text, redact_url


def test_password_is_replaced_and_user_kept():
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"


def test_password_only_userinfo_is_redacted():
    assert redact_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"


def test_secret_query_values_are_redacted():
    assert redact_url("https://cam/feed?token=abc&res=hd") == "https://cam/feed?token=***&res=hd"


def test_url_without_credentials_is_unchanged():
    assert redact_url("rtsp://127.0.0.1:8554/cam") == "rtsp://127.0.0.1:8554/cam"


def test_urls_inside_messages_are_redacted():
    message = "cannot open rtsp://u:hunter2@cam.local/x: Connection refused"
    assert "hunter2" not in redact_text(message)
    assert "rtsp://u:***@cam.local/x" in redact_text(message)


@given(password=st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=4, max_size=20))
def test_no_password_survives_redaction(password):
    url = f"rtsps://operator:{password}@camera.example:322/stream1"
    assert redact_url(url) == "rtsps://operator:***@camera.example:322/stream1"
