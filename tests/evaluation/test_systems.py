import pytest

from harnesslm.evaluation.systems import SystemId


@pytest.mark.parametrize(
    "label",
    ["static (refined)", "truncated-2l (refined, onnx-int8)", "teacher (fine-tuned)", "bm25", "minilm (a) (aligned)"],
)
def test_labels_round_trip(label: str) -> None:
    assert SystemId.parse(label).label == label


def test_phases_and_runtimes() -> None:
    int8 = SystemId.parse("static (refined, onnx-int8)")
    assert int8 == SystemId("static", "refined", "onnx-int8")
    assert int8.as_trained.label == "static (refined)" and int8.phase_rank == -1
    assert SystemId("static", "refined").previous_phase == SystemId("static", "aligned")
    assert SystemId("static", "aligned").previous_phase is None
    assert SystemId.parse("teacher (fine-tuned)").previous_phase is None
