"""`capgap recommend` as text: the answer first, a few lines on how sure it is, the rest under --explain.

The first line is the headline law's answer for this student; without ``--law`` the
second is the other published law's, for students made the other way. With a budget
that a law can spend, the headline is the budget's choice, and the optimal teacher at
the given tokens is named beside it. Then the interval (or "no interval"), the
warnings on these answers, and the nearest models. ``explain`` adds every law's full
block (regime, source, whether it applies), the strategies and their FLOPs. Where two
size measures meet, every size says which it is. Lines wrap at ``WIDTH`` characters.

Only the standard library and capgap's formatting helpers: the command starts fast.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from capgap.sizes.units import format_ratio, format_size

if TYPE_CHECKING:
    from capgap.recommender.answer import LawAnswer, NearestModel, Recommendation

WIDTH = 100
PUBLISHED = ("zhang2023", "busbridge2025")  # capgap.laws.files.PUBLISHED, without importing it
FAR_OUTSIDE = "far outside the law"  # how capgap.recommender.reach.far_outside's warnings begin


class _Sizes:
    """Sizes in words: with their measure whenever the text holds more than one measure."""

    def __init__(self, mixed: bool) -> None:
        self.mixed = mixed

    def of(self, params: float, measure: str) -> str:
        return f"{format_size(params)} {measure}" if self.mixed else format_size(params)

    def model(self, n: NearestModel, measure: str) -> str:
        """A ladder model's size, with its total beside a non-embedding count."""
        if self.mixed and measure == "nonembed" and n.total_params:
            return f"{format_size(n.params)} nonembed / {format_size(n.total_params)} total"
        return self.of(n.params, measure)

    def span(self, low: float | None, high: float | None, measure: str) -> str:
        """'3.66B to 19.6B nonembed', open ends in words."""
        low_text = format_size(low) if low is not None else "any smaller"
        return f"{low_text} to {self.of(high, measure) if high is not None else 'any larger'}"


def _flops(value: float) -> str:
    return f"{value:.3g}".replace("e+", "e")


def _model_ratio(n: NearestModel, rec: Recommendation, measure: str) -> str:
    """A model's multiple of the student in the measure the student was given in, where the model's count is known."""
    if rec.given_measure == "total" and measure != "total" and n.total_params:
        return format_ratio(n.total_params / rec.student_given)
    return format_ratio(n.ratio)


def _side_by_side(rec: Recommendation) -> bool:
    return [a.law.source for a in rec.by_law] in (list(PUBLISHED), list(PUBLISHED[::-1]))


def _whose(answer: LawAnswer) -> str:
    author = answer.law.author
    return author if author.startswith("the ") else f"{author}'s law"


def _teacher(answer: LawAnswer, sizes: _Sizes, rec: Recommendation) -> str:
    """The teacher to take: the preferred ladder model, else the law's size; with its multiple of the student."""
    measure = answer.law.size_measure
    if answer.censored is not None:
        side = "at least" if answer.censored == "at_least" else "at most"
        return f"a teacher of {side} {sizes.of(answer.teacher_params, measure)} (censored)"
    if answer.nearest:
        n = answer.nearest[0]
        return f"{n.name} ({sizes.model(n, measure)}, {_model_ratio(n, rec, measure)})"
    ratio = answer.teacher_params / answer.student_params
    return f"a {sizes.of(answer.teacher_params, measure)} teacher ({format_ratio(ratio)})"


def _for_whom(answer: LawAnswer, init: str) -> str:
    """'Zhang et al.'s law, the one for pruned students' or what the law was fitted on instead."""
    if answer.law.source in PUBLISHED:
        own = "pruned" if answer.law.source == "zhang2023" else "scratch"
        if own == init:
            return f"{_whose(answer)}, the one for {init} students"
        return f"{_whose(answer)}, fitted on {own} students (this one is {init})"
    return f"{_whose(answer)} ({f'fitted on {answer.law.n_runs} runs' if answer.law.fitted else 'not fitted on runs'})"


def _student(rec: Recommendation, sizes: _Sizes, budget: bool) -> str:
    given = rec.tokens_rule.startswith("given")
    tokens = f", {format_size(rec.tokens)} tokens" if given and not budget else ""
    if rec.student_kind == "moe":  # its size is the active count, whatever measure the dense sizes use
        return f"{format_size(rec.student_given)}-active MoE student ({rec.init}{tokens})"
    return f"{sizes.of(rec.student_given, rec.given_measure)} student ({rec.init}{tokens})"


def _budget_words(rec: Recommendation) -> str:
    pretraining = rec.teacher_cost in ("pretraining", "both")
    return f"{_flops(rec.budget)} FLOPs" + (" including the teacher's pretraining" if pretraining else "")


def _budget_choice(answer: LawAnswer, rec: Recommendation, sizes: _Sizes) -> str | None:
    """What the budget buys by this law, or None when the law cannot say."""
    metric, measure = answer.law.metric, answer.law.size_measure
    optimum, best = answer.compute_optimal, answer.budget_best
    if optimum is not None:
        nearest = f" (nearest: {answer.nearest[0].name})" if answer.nearest else ""
        split = (f"a {sizes.of(optimum.teacher_params, measure)} teacher{nearest} pretrained on "
                 f"{format_size(optimum.teacher_tokens)} tokens, the student distilled on "
                 f"{format_size(optimum.distill_tokens)}")
        if optimum.distillation_pays:
            return (f"distil: {split}; distillation pays ({optimum.distilled_loss:.3f} {metric} vs "
                    f"{optimum.supervised_loss:.3f} trained alone)")
        return (f"train the student alone: distillation does not pay ({optimum.supervised_loss:.3f} {metric} alone vs "
                f"{optimum.distilled_loss:.3f} at best distilled: {split})")
    if best is not None:
        pays = "" if answer.supervised_metric is None else (
            f"; distillation {'pays' if answer.distillation_pays else 'does not pay'} "
            f"({answer.supervised_metric:.3f} trained alone)")
        return (f"distil from {best.teacher} ({sizes.of(best.teacher_params, measure)}) on {format_size(best.tokens)} "
                f"tokens, expected {best.metric} {best.expected_metric:.3f}{pays}")
    return None


def _headline(rec: Recommendation, sizes: _Sizes) -> tuple[str, list[str]]:
    """(the answer's line, what it needs beside it: with a budget, the optimal teacher at the given tokens)."""
    head = rec.by_law[0]
    choice = _budget_choice(head, rec, sizes) if rec.budget is not None else None
    if choice is None:
        return f"{_student(rec, sizes, False)}: distil from {_teacher(head, sizes, rec)}: {_for_whom(head, rec.init)}.", []
    line = f"{_student(rec, sizes, True)}, {_budget_words(rec)}: {choice}: {_for_whom(head, rec.init)}."
    measure = head.law.size_measure
    optimum = head.compute_optimal
    beside = []
    at_tokens = head.teacher_at_tokens if optimum is not None else head.teacher_params
    which = "given" if rec.tokens_rule.startswith("given") else "default"
    beside.append(f"  optimal teacher at the {which} tokens ({format_size(rec.tokens)}): {sizes.of(at_tokens, measure)}"
                  + ("" if optimum is not None or not head.nearest else f", nearest {_teacher(head, sizes, rec)}"))
    return line, beside


def _other(rec: Recommendation, sizes: _Sizes) -> list[str]:
    """The other published law's answer in one sentence, for students made the other way."""
    if not _side_by_side(rec):
        return []
    other = rec.by_law[1]
    made = "Scratch" if other.law.source == "busbridge2025" else "Pruned"
    measure, model = other.law.size_measure, _teacher(other, sizes, rec)
    name = other.nearest[0].name if other.nearest and other.censored is None else model
    choice = _budget_choice(other, rec, sizes) if rec.budget is not None else None
    if choice is not None:
        return [f"{made} students, {_budget_words(rec)}: {choice}; by {other.law.author}"]
    if other.censored is not None:
        return [_sentence(f"{made} students: {model} by {other.law.author}")]
    ideal = f"ideal {sizes.of(other.teacher_params, measure)}"
    band = other.near_miss if other.censored is None else None
    if other.tokens_per_param is not None and band is not None:
        ideal += f" at {format_size(rec.tokens)} tokens"
    if band is not None:
        ideal += f"; within {band.tolerance:g} loss from {sizes.span(band.low, band.high, measure)}"
    else:
        ideal += f", {format_ratio(other.teacher_params / other.student_params)} the student"
    return [f"{made} students: {name} by {other.law.author} ({ideal})."]


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."


def interval_name(answer: LawAnswer) -> str:
    """What an answer's low-high is: an interval at its level, or (an exact fit) only the measured teachers
    either side of the best ones."""
    if answer.bracket:
        return "no interval (an exact fit): the measured teachers either side of the best are"
    return f"{answer.level:.0%} interval"


def _interval(head: LawAnswer, sizes: _Sizes) -> str:
    from capgap.recommender.ladder_snap import interval_text

    measure = head.law.size_measure
    teacher = f"  law's teacher {sizes.of(head.teacher_params, measure)}"
    if head.compute_optimal is not None:
        return "  no interval: the budget's split is solved from the law's published constants"
    if head.censored is not None:
        return f"{teacher}, a bound, no interval: the law only says the optimum lies " \
               f"{'below' if head.censored == 'at_most' else 'above'} it"
    if head.teacher_params_low is not None or head.teacher_params_high is not None:
        text = interval_text(head.teacher_params_low, head.teacher_params_high)
        return f"{teacher}, {interval_name(head)} {text}{' ' + measure if sizes.mixed else ''}"
    why = "a published point estimate, not fitted on runs" if not head.law.fitted else "the fit gives none"
    text = f"{teacher}, no interval ({why})"
    band = head.near_miss
    if band is not None:
        text += (f"; teachers {sizes.span(band.low, band.high, measure)} give a student within "
                 f"{band.tolerance:g} {head.law.metric} of the best")
    return text


def _warnings(rec: Recommendation) -> list[str]:
    """The headline's warnings (far outside first: printed above the answer), then the other published
    law's, less the init mismatch its sentence already states."""
    head = rec.by_law[0]
    lines = [f"  warning: {w}" for w in _kept(head.warnings)]
    if _side_by_side(rec):
        other = rec.by_law[1]
        lines += [f"  warning ({other.law.author}): {w}" for w in _kept(other.warnings)
                  if not (w.startswith("law fitted on ") and w.endswith(f"this student is {rec.init}"))]
    return lines


def _kept(warnings: list[str]) -> list[str]:
    """Warnings below the answer: a far-outside one is printed above it, and says more than 'extrapolating'."""
    far = any(w.startswith(FAR_OUTSIDE) for w in warnings)
    return [w for w in warnings if not w.startswith(FAR_OUTSIDE) and not (far and w.startswith("extrapolating"))]


def _nearest(rec: Recommendation, sizes: _Sizes) -> list[str]:
    head = rec.by_law[0]
    if not head.nearest:
        return []
    measure = head.law.size_measure
    models = ", ".join(f"{n.name} {sizes.model(n, measure)} ({_model_ratio(n, rec, measure)}"
                       + (f", {n.penalty:+.3f} {head.law.metric}" if n.penalty is not None else "") + ")"
                       for n in head.nearest)
    return [f"  nearest {rec.ladder} models, preferred first: {models}"]


def _available(rec: Recommendation, sizes: _Sizes) -> list[str]:
    direct = next((s for s in rec.strategies if s.name == "available_teacher_direct"), None)
    if direct is None:
        return []
    measure = rec.size_measure
    given = direct.steps[0].teacher_params
    text = (f"  your {sizes.of(given, measure)} teacher ({format_ratio(given / rec.teacher_params)} the law's): "
            f"directly {_flops(direct.flops)} FLOPs")
    chain = next((s for s in rec.strategies if s.name == "teacher_assistant_chain"), None)
    if chain is not None:
        hops = ", ".join(sizes.of(step.student_params, measure) for step in chain.steps[:-1])
        text += f"; through assistant(s) of {hops}: {chain.runs} runs, {_flops(chain.flops)} FLOPs"
    return [text]


def _budget(rec: Recommendation) -> list[str]:
    if rec.budget is None:
        return []
    fits = [s.name for s in rec.strategies if s.fits_budget]
    over = [s.name for s in rec.strategies if s.fits_budget is False]
    return [f"  budget {_budget_words(rec)}: fits: {', '.join(fits) or 'none'}"
            + (f"; over: {', '.join(over)}" if over else "")]


def short_answer(rec: Recommendation) -> list[str]:
    """The default text: the answer first, then about ten lines at most."""
    shown = rec.by_law[:2] if _side_by_side(rec) else rec.by_law[:1]
    sizes = _Sizes(mixed=any(a.law.size_measure != rec.given_measure for a in shown))
    far = [f"warning: {w}" if i == 0 else f"warning ({a.law.author}): {w}"
           for i, a in enumerate(shown) for w in a.warnings if w.startswith(FAR_OUTSIDE)]
    line, beside = _headline(rec, sizes)
    kind = [f"warning: {rec.kind_caveat}"] if rec.kind_caveat else []  # before anything: the answer is not for it
    return (kind + far + [line] + _other(rec, sizes) + beside + [_interval(rec.by_law[0], sizes)] + _warnings(rec)
            + _nearest(rec, sizes) + _available(rec, sizes) + _budget(rec)
            + ["  more: --explain (regimes, sources, strategies, each law in full), --json"])


def _explained_teacher(answer: LawAnswer) -> str:
    from capgap.recommender.ladder_snap import interval_text

    size = f"{format_size(answer.teacher_params)} {answer.law.size_measure}"
    if answer.censored == "at_least":
        return f"at least {size} (censored)"
    if answer.censored == "at_most":
        return f"at most {size} (censored)"
    if answer.teacher_params_low is not None or answer.teacher_params_high is not None:
        return f"{size} ({interval_name(answer)} {interval_text(answer.teacher_params_low, answer.teacher_params_high)})"
    return f"{size} (no interval)"


def _applies_text(applies) -> str:  # noqa: ANN001 (capgap.laws.regime.Applies)
    word = {True: "yes", False: "no", None: "unknown"}[applies.inside]
    return f"{word} ({'; '.join(applies.reasons)})"


def format_answer(answer: LawAnswer, role: str, ladder: str) -> list[str]:
    """One law's full block: who, regime, source, whether it applies, the teacher, the near-miss band, the models."""
    law, metric, measure = answer.law, answer.law.metric, answer.law.size_measure
    lines = [f"[{role}] {law.label}: {law.source}"]
    lines += [f"  {part}" for part in law.regime]
    lines.append(f"  source: {law.reference}; {law.solidity}")
    lines.append(f"  applies: {_applies_text(answer.applies)}")
    lines += [f"  warning: {w}" for w in answer.warnings]
    ratio = format_ratio(answer.teacher_params / answer.student_params)
    expected = f"; predicted {metric} {answer.expected_metric:.3f}" if answer.expected_metric is not None else ""
    what = "teacher for the budget" if answer.compute_optimal is not None else "optimal teacher"
    lines.append(f"  {what}: {_explained_teacher(answer)}, {ratio} the student "
                 f"({format_size(answer.student_params)} {measure}){expected}")
    if answer.teacher_at_tokens is not None:
        lines.append(f"  optimal teacher at the given tokens: {format_size(answer.teacher_at_tokens)} {measure}")
    band = answer.near_miss
    if band is not None:
        low = format_size(band.low) if band.low is not None else "any smaller"
        high = format_size(band.high) if band.high is not None else "any larger"
        lines.append(f"  near miss: teachers {low} to {high} {measure} give a student within {band.tolerance:g} of the "
                     f"best predicted {metric} ({band.best_metric:.3f})")
    elif answer.compute_optimal is None:
        lines.append("  near miss: this law places the teacher but cannot predict student quality")
    optimum = answer.compute_optimal
    if optimum is not None:
        verdict = "yes" if optimum.distillation_pays else "no: train the student alone"
        lines.append(f"  distillation pays: {verdict} (distilled {optimum.distilled_loss:.3f} vs supervised "
                     f"{optimum.supervised_loss:.3f} {metric}); teacher pretrained on {format_size(optimum.teacher_tokens)} "
                     f"tokens, student distilled on {format_size(optimum.distill_tokens)}")
    if answer.budget_best is not None:
        b = answer.budget_best
        lines.append(f"  best expected student within the budget: teacher {b.teacher} ({format_size(b.teacher_params)} "
                     f"{measure}), {format_size(b.tokens)} tokens, {b.flops:.3g} FLOPs, expected {b.metric} "
                     f"{b.expected_metric:.4g}")
    if answer.nearest:
        lines.append(f"  nearest {ladder} models, {measure} parameters (preferred first):")
        width = max(len(n.name) for n in answer.nearest)
        for n in answer.nearest:
            where = {True: "inside the interval", False: "outside the interval", None: ""}[n.inside_interval]
            cost = f"  {n.penalty:+.3f} {metric} vs the best" if n.penalty is not None else ""
            lines.append(f"    {'*' if n.name == answer.preferred else ' '} {n.name:<{width}}  {format_size(n.params):>6}  "
                         f"{format_ratio(n.ratio):>6} student  {where}{cost}".rstrip())
        lines.append(f"    {answer.preferred_reason}")
    lines += [f"  note: {note}" for note in answer.notes]
    return lines


def explanation(rec: Recommendation) -> list[str]:
    """Everything behind the answer: the setting, each law's block, the strategies and the budget."""
    lines = [f"student: {format_size(rec.student_given)} ({rec.given_measure} parameters), {rec.init}; "
             f"{format_size(rec.tokens)} distillation tokens ({rec.tokens_rule}); teacher cost: {rec.teacher_cost}"]
    for i, answer in enumerate(rec.by_law):
        lines += format_answer(answer, "headline" if i == 0 else "also", rec.ladder)
    lines.append(f"strategies by the headline law ({rec.flops_rule}):")
    width = max(len(s.name) for s in rec.strategies)
    for s in rec.strategies:
        fits = "" if s.fits_budget is None else ("  fits the budget" if s.fits_budget else "  over the budget")
        expected = f"; expected {rec.law.metric} {s.expected_metric:.4g}" if s.expected_metric is not None else ""
        lines.append(f"  {s.name:<{width}}  {s.runs:>2} run{'s' if s.runs != 1 else ' '}  {s.flops:9.3g} FLOPs{fits}  "
                     f"({s.description}{expected})")
        if s.extra_runs:
            for step in s.steps:
                lines.append(f"      {step.teacher} ({format_size(step.teacher_params)}) → {step.student} "
                             f"({format_size(step.student_params)}): {step.flops:.3g} FLOPs")
    if rec.budget is not None:
        fitting = [s.name for s in rec.strategies if s.fits_budget]
        lines.append(f"budget {rec.budget:.3g} FLOPs; strategies that fit: {', '.join(fitting) or 'none'}")
    head_notes = set(rec.by_law[0].notes)
    lines += [f"note: {n}" for n in rec.notes if n not in head_notes]
    return lines


def wrap(lines: list[str], width: int = WIDTH) -> list[str]:
    """Each line wrapped at ``width``, continuations indented two more than the line."""
    out: list[str] = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()))
        out += textwrap.wrap(line, width=width, subsequent_indent=indent + "    ", break_on_hyphens=False,
                             break_long_words=False) or [""]
    return out


def format_recommendation(rec: Recommendation, explain: bool = False) -> list[str]:
    """The text `capgap recommend` prints: the short answer, and with ``explain`` everything behind it."""
    return wrap(short_answer(rec) + ([""] + explanation(rec) if explain else []))
