import io

import lstmlearn


def test_show_config_prints_the_facts():
    out = io.StringIO()
    lstmlearn.show_config(file=out)
    text = out.getvalue()
    c = lstmlearn.config()
    assert text.startswith("lstmlearn ")
    for fact in (c["isa"], c["eigen"], str(c["threads"]), c["compiler"]):
        assert fact in text
    assert c["eigen"].startswith("3.4")
    assert c["threads"] >= 1
    assert set(c["isa_built"]) >= {"baseline"}
