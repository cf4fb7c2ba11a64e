"""The reproduction report lists every number of spec §7 with a status derived from result files."""
from krepes_lib.studies.results import SPEC7, spec7_status


def test_every_spec7_item_has_an_id_a_paper_number_and_a_source_or_a_reason():
    ids = [it["id"] for it in SPEC7]
    assert len(ids) == len(set(ids))
    for it in SPEC7:
        assert it["paper"] and (it["notebooks"] or it.get("missing")), it["id"]


def test_status_follows_the_matching_verdicts():
    item = {"id": "x", "paper": "p", "notebooks": {"nb": r"κ"}}
    res = lambda *v: {"nb": {"results": {"claims": [{"claim": f"κ {i}", "verdict": x} for i, x in enumerate(v)]  # noqa: E731
                                         + [{"claim": "other", "verdict": "does not hold"}]}}}
    assert spec7_status(item, res("holds", "holds (α = 0.05)"))[0] == "reproduced"
    assert spec7_status(item, res("does not hold", "inconclusive"))[0] == "not reproduced"
    assert spec7_status(item, res("holds", "does not hold"))[0] == "partly reproduced"
    assert spec7_status(item, res("inconclusive"))[0].startswith("inconclusive")
    status, rows = spec7_status(item, {})
    assert status.startswith("not attempted") and rows == []
    missing = {"id": "y", "paper": "p", "notebooks": {}, "missing": "FairFace is not offline"}
    assert spec7_status(missing, {})[0] == "not attempted: FairFace is not offline"
