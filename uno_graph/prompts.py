"""Every prompt uno-graph sends, in one place. Wording follows the reference's prompts (paraphrased)."""

from __future__ import annotations

DISTILL_SYSTEM = (
    "You are a conversation analysis expert. From a user's feedback on an answer, write the rules a "
    "better answer to this kind of question must follow."
)

DISTILL_USER = """## Initial query
{query}

## Initial model response
{answer}

## User feedback
{feedback}

Keep only feedback about the initial query; ignore digressions. State each rule positively, as what
to do, in one short sentence. If the user is satisfied or gives nothing actionable, return an empty
list. Reply with JSON only: {{"rules": ["...", "..."]}}"""

# Type 4 revision in the reference: initial answer + numbered suggestions (rules, then the raw feedback).
REVISE_USER = """## Initial Answer
{answer}

## Suggestion
{suggestions}

## User Question
{query}

Revise the initial answer following the suggestions. Output the complete revised answer only; do not repeat the question."""

JUDGE_SYSTEM = "You are a rigorous and objective AI answer quality evaluator."

JUDGE_USER = """## Question
{query}

## Expert Suggestion
{rules}

## Answer
{answer}

The suggestion is the main standard; accuracy, completeness, clarity and relevance come second.
Score the answer from 1 (ignores the suggestion) to 10 (follows it fully and answers well).
Reply with JSON only, the score first: {{"score": <integer 1-10>, "reason": "..."}}"""

# Cognitive gap: the reranker's yes/no question, asked of the serving model itself.
GAP_USER = """Judge whether a response suggestion is already covered by what a helpful assistant would do anyway.

## Question
{query}

## Suggestion
{rule}

Would a typical answer to this question already follow the suggestion without being told? Answer only "yes" or "no"."""

CRITIC_USER = """Provide suggestions to make the answer better. Your output must be some rules, using number to order them.

## User Query
{query}

## Initial Answer
{answer}"""


def numbered(items: list[str]) -> str:
    """'1. a\\n2. b' — the list format Critic targets and revise prompts use."""
    return "\n".join(f"{i}. {item.strip()}" for i, item in enumerate(items, start=1))


def critic_messages(query: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": CRITIC_USER.format(query=query, answer=answer)}]


def revise_messages(query: str, answer: str, suggestions: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": REVISE_USER.format(query=query, answer=answer, suggestions=suggestions)}]
