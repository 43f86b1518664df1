"""Teacher-quality inversions: which larger teacher is not better than a smaller one."""

from capgap.runs.ladder_quality import Teacher, inversions, teacher_inversions
from capgap.runs.records import RunRecord


def test_a_larger_teacher_no_better_than_the_best_smaller_one_is_an_inversion():
    ladder = [Teacher("a", 100, 5.6), Teacher("b", 200, 5.4), Teacher("c", 400, 5.5), Teacher("d", 800, 5.4),
              Teacher("e", 1600, 5.3)]
    found = inversions(ladder)
    assert [(i.larger.name, i.smaller.name) for i in found] == [("c", "b"), ("d", "b")]  # a tie is not better
    assert "teacher c (400) has held-out loss 5.5000, not better than the smaller b (200, 5.4000)" in found[0].sentence()
    assert inversions(sorted(ladder, key=lambda t: -t.params)) == found  # order of input does not matter
    assert inversions([Teacher("a", 100, 5.0), Teacher("b", 100, 5.5)]) == []  # same size: no claim


def test_teacher_inversions_from_runs_one_sentence_per_inversion_and_family():
    def run(family, teacher, loss):
        return RunRecord(family=family, student_params=50, teacher_params=teacher, teacher_loss=loss,
                         metrics={"eval_loss": 6.0}, seed=teacher)

    runs = [run("gpt2", 100, 5.6), run("gpt2", 100, 5.6), run("gpt2", 200, 5.7), run("pythia", 100, 5.0),
            run("pythia", 200, 4.9), RunRecord(student_params=50, teacher_params=300, metrics={"eval_loss": 6.0})]
    (sentence,) = teacher_inversions(runs)
    assert sentence.startswith("teacher gpt2 (200) has held-out loss 5.7000, not better than the smaller gpt2 (100")
    assert teacher_inversions(runs[3:]) == []
