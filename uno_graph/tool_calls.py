"""Tool calling for a local chat model: bound tools into the prompt, tool calls back out of the text.

A hosted API returns tool calls as structured data; a local causal LM only writes text, so the chat
model has to (1) show the tools to the model in the form it was trained on, (2) show earlier calls and
their results in the history, and (3) read calls out of what it writes.

**Prompt.** When the model's chat template renders `tools=` (Qwen 2.5, Llama 3.1, Hermes, ...), the
template does it. The embedded SmolLM2-135M-Instruct's template ignores tools, so the tools go into the
system prompt in the format SmolLM2 was trained on for function calling (`<tools>...</tools>` listing
the JSON schemas, and `<tool_call>[...]</tool_call>` as the answer format; see `SYSTEM_PROMPT`).
Likewise, a template that does not render assistant `tool_calls` and `tool` messages gets them as
text: the calls appended to the assistant turn in the same `<tool_call>[...]</tool_call>` form, and
each run of tool results as one user turn of `<tool_response>{"name", "content"}</tool_response>`
blocks (Qwen 2.5's convention, which any template can render).

**Forcing a call.** `tool_choice="any"` prefills the answer with the opening of a call
(`<tool_call>[{"name": "`); a tool's name, or `"any"` with a single tool (what `with_structured_output`
binds), prefills up to that tool's first required argument (`... "name": "get_weather", "arguments":
{"city": "`). The model then only writes the rest; small models that would answer in prose, or
write out the schema, still produce a call. The prefill is part of the prompt (input tokens) and is
put back in front of the generated text before parsing, and generation stops at `</tool_call>`.

**Output.** `parse_tool_calls` reads three formats: SmolLM2's JSON list in one `<tool_call>` block,
Hermes / Qwen's one `<tool_call>{...}</tool_call>` block per call, and Llama 3's bare JSON object
`{"name": ..., "parameters": {...}}` as the whole answer (optionally after `<|python_tag|>` or in a
```` ```json ```` fence). A call whose JSON does not parse becomes an `invalid_tool_call`; bare JSON
only counts as a call when its name is a bound tool (an answer that happens to be JSON stays text).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.messages.tool import InvalidToolCall, ToolCall, ToolCallChunk, invalid_tool_call, tool_call
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.utils.function_calling import convert_to_openai_tool

from uno_graph.errors import ConfigError

OPEN, CLOSE = "<tool_call>", "</tool_call>"
PYTHON_TAG = "<|python_tag|>"

SYSTEM_PROMPT = """You can call functions. These are the functions you have access to:
<tools>{tools}</tools>

To call one or more of them, answer with nothing but the calls, in this format:
<tool_call>[{{"name": "function_name", "arguments": {{"argument_name": "value"}}}}]</tool_call>
Put every call in the one JSON list. Use only the functions and arguments listed above, with values of
the right type. If no function call is needed, answer the user in plain text."""
"""Tools block for templates that do not render `tools=`: SmolLM2's function-calling format."""

_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|\Z)", re.S)
_CALL_START = re.compile(r'\[?\s*\{\s*"(?:name|function)"\s*:')
_NAME = re.compile(r'"name"\s*:\s*"([^"]*)"')
_ARGS = re.compile(r'"(?:arguments|parameters)"\s*:\s*')
_FENCE = re.compile(r"\A```(?:json)?\s*(.*?)\s*(?:```)?\Z", re.S)
_SEPARATORS = " \t\r\n,;"
_CALL_KEYS = {"name", "arguments", "parameters", "type", "id"}
_STREAM_OPENERS = (OPEN, PYTHON_TAG, "```", "{", "[")
_PROBE = "uno_graph_probe_fn"


# --------------------------------------------------------------------------------------------------
# Binding: tools and tool_choice as the chat model receives them
# --------------------------------------------------------------------------------------------------


def convert_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Any tool LangChain knows (BaseTool, function, pydantic model, TypedDict, JSON schema) -> OpenAI form."""
    return [convert_to_openai_tool(t) for t in tools]


def tool_names(tools: Sequence[dict[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def resolve_tool_choice(choice: Any, names: Sequence[str]) -> str:
    """`"auto"`, `"none"`, `"required"` or one tool's name, from any of the spellings LangChain passes.

    `"any"`, `"required"` and `True` all mean "call some tool"; with a single tool that is that tool.
    """
    if choice is None or choice == "auto":
        resolved = "auto"
    elif choice is False or choice == "none":
        resolved = "none"
    elif choice is True or choice in ("any", "required"):
        resolved = "required"
    elif isinstance(choice, dict):
        resolved = (choice.get("function") or {}).get("name") or choice.get("name") or ""
    elif isinstance(choice, str):
        resolved = choice
    else:
        raise ConfigError(f"tool_choice {choice!r} is not understood; use 'auto', 'none', 'any' or a tool name")
    if resolved not in ("auto", "none", "required") and resolved not in names:
        raise ConfigError(f"tool_choice names {resolved!r}, which is not a bound tool; bound: {list(names)}")
    if resolved == "required" and len(names) == 1:
        return names[0]
    return resolved


@dataclass(frozen=True)
class ToolSetup:
    """What parsing one answer needs to know about the tools of its call."""

    names: tuple[str, ...]
    prefix: str = ""  # the call opening prefilled into the answer when a call is forced
    parallel: bool = True  # False: only the first call is kept

    @property
    def stop(self) -> str | None:
        """A forced call ends with its block: what a small model writes after it is noise."""
        return CLOSE if self.prefix.startswith(OPEN) else None


# --------------------------------------------------------------------------------------------------
# Rendering: what the chat template can do, and the fallbacks
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSupport:
    """Which tool features a chat template renders itself (probed once per template)."""

    tools: bool  # renders `tools=` into the prompt
    history: bool  # renders assistant `tool_calls` (and so, presumably, `tool` messages)
    hermes: bool  # its tools prompt asks for `<tool_call>` blocks (else bare JSON, Llama 3 style)


_SUPPORT: dict[str, TemplateSupport] = {}


def _probe_render(tokenizer: Any, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    try:
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs))
    except Exception:  # noqa: BLE001 - a template that rejects the probe does not support it
        return ""


def template_support(tokenizer: Any) -> TemplateSupport:
    """Probe the template with a made-up tool: does its name come out in the rendered text?"""
    template = str(getattr(tokenizer, "chat_template", "") or "")
    known = _SUPPORT.get(template)
    if known is not None:
        return known
    probe_tool = {"type": "function", "function": {"name": _PROBE, "description": "probe",
                                                    "parameters": {"type": "object", "properties": {}}}}
    user = {"role": "user", "content": "hi"}
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_probe00", "type": "function", "function": {"name": _PROBE, "arguments": {}}}]}
    result = {"role": "tool", "content": "ok", "tool_call_id": "call_probe00", "name": _PROBE}
    support = TemplateSupport(
        tools=_PROBE in _probe_render(tokenizer, [user], tools=[probe_tool]),
        history=_PROBE in _probe_render(tokenizer, [user, call, result]),
        hermes=OPEN in template,
    )
    _SUPPORT[template] = support
    return support


def _call_text(calls: Sequence[dict[str, Any]]) -> str:
    listed = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in calls]
    return f"{OPEN}{json.dumps(listed, ensure_ascii=False)}{CLOSE}"


def _response_text(message: dict[str, Any]) -> str:
    body = {"name": message.get("name") or "", "content": message.get("content", "")}
    return f"<tool_response>\n{json.dumps(body, ensure_ascii=False)}\n</tool_response>"


def history_as_text(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls and results as plain turns, for templates that drop them (see the module docstring)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "assistant" and message.get("tool_calls"):
            text = str(message.get("content") or "")
            calls = _call_text(message["tool_calls"])
            out.append({"role": "assistant", "content": f"{text}\n{calls}" if text else calls})
        elif role == "tool":
            piece = _response_text(message)
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + piece
            else:
                out.append({"role": "user", "content": piece, "_tool_results": True})
        else:
            out.append(message)
    return [{k: v for k, v in m.items() if k != "_tool_results"} for m in out]


def tools_system_prompt(tools: Sequence[dict[str, Any]]) -> str:
    return SYSTEM_PROMPT.format(tools=json.dumps([t["function"] for t in tools], ensure_ascii=False))


def _with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        joined = f"{first['content']}\n\n{text}" if first.get("content") else text
        return [{**first, "content": joined}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _forced_prefix(choice: str, support: TemplateSupport | None, tools: Sequence[dict[str, Any]]) -> str:
    """The start of a call prefilled into the answer; "" when the model may answer in text.

    For one named tool the prefill runs into its arguments object up to the value of its first required
    argument: a 135M model that is left to open the object itself tends to write the schema or prose.
    """
    if choice == "auto":
        return ""
    if support is None:  # our system prompt: SmolLM2's list in one block
        opening, key = OPEN + '[{"name": "', "arguments"
    elif support.hermes:
        opening, key = OPEN + '\n{"name": "', "arguments"
    else:
        opening, key = '{"name": "', "parameters"
    if choice == "required":
        return opening
    prefix = f'{opening}{choice}", "{key}": {{'
    schema = next(t["function"].get("parameters") or {} for t in tools if t["function"]["name"] == choice)
    required = [r for r in schema.get("required") or [] if isinstance(r, str)]
    if required:
        kind = ((schema.get("properties") or {}).get(required[0]) or {}).get("type")
        prefix += json.dumps(required[0]) + ": " + ('"' if kind == "string" else "")
    return prefix


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None,
                  tool_choice: Any = None, *, parallel: bool = True) -> tuple[str, ToolSetup | None]:
    """The prompt text for `messages` with `tools` (OpenAI form) bound, and what parsing the answer needs.

    Returns `(prompt, None)` when no tool is bound or `tool_choice="none"`: the answer is then plain text.
    """
    tools = list(tools or [])
    names = tool_names(tools)
    choice = resolve_tool_choice(tool_choice, names) if tools else "none"
    has_history = any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
    support = template_support(tokenizer) if tools or has_history else None
    if support is not None and has_history and not support.history:
        messages = history_as_text(messages)
    if choice == "none" or support is None:
        return _apply_template(tokenizer, messages), None
    if support.tools:
        prompt = _apply_template(tokenizer, messages, tools=tools)
        prefix = _forced_prefix(choice, support, tools)
    else:
        prompt = _apply_template(tokenizer, _with_system(messages, tools_system_prompt(tools)))
        prefix = _forced_prefix(choice, None, tools)
    return prompt + prefix, ToolSetup(names=tuple(names), prefix=prefix, parallel=parallel)


def _apply_template(tokenizer: Any, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs))


# --------------------------------------------------------------------------------------------------
# Parsing: tool calls out of generated text
# --------------------------------------------------------------------------------------------------


@dataclass
class ParsedOutput:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_tool_calls: list[InvalidToolCall] = field(default_factory=list)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _unwrap(text: str) -> str:
    text = text.strip()
    if text.startswith(PYTHON_TAG):
        text = text[len(PYTHON_TAG):].strip()
    fenced = _FENCE.match(text)
    return fenced.group(1).strip() if fenced and text.startswith("```") else text


def _decode_values(text: str) -> tuple[list[Any], str]:
    """JSON values at the start of `text` (separated by whitespace, commas or semicolons) and the rest."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    end = 0
    while True:
        i = end
        while i < len(text) and text[i] in _SEPARATORS:
            i += 1
        if i >= len(text) or text[i] not in "{[":
            break
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        values.append(value)
    return values, text[end:]


def _flatten(values: list[Any]) -> list[Any]:
    return [item for value in values for item in (value if isinstance(value, list) else [value])]


def _invalid(raw: str, error: str) -> InvalidToolCall:
    """An unreadable call; `args` holds the text after `"arguments":` when there is one (the JSON
    string a tool call chunk would carry), else the whole raw call."""
    name = _NAME.search(raw)
    args = raw
    found = _ARGS.search(raw)
    if found:
        args = raw[found.end():].rstrip()
        for closer in ("]", "}"):
            if args.endswith(closer):
                args = args[:-1].rstrip()
    return invalid_tool_call(name=name.group(1) if name else None, args=args, id=new_call_id(), error=error)


def _read_call(item: Any, out: ParsedOutput) -> None:
    if isinstance(item, dict) and isinstance(item.get("function"), dict):
        item = item["function"]
    raw = json.dumps(item, ensure_ascii=False)
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        out.invalid_tool_calls.append(_invalid(raw, "a tool call needs a JSON object with a string 'name'"))
        return
    args = item.get("arguments", item.get("parameters"))
    if args is None:
        args = {}
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            pass
    if not isinstance(args, dict):
        out.invalid_tool_calls.append(invalid_tool_call(
            name=item["name"], args=args if isinstance(args, str) else json.dumps(args), id=new_call_id(),
            error="the arguments are not a JSON object"))
        return
    out.tool_calls.append(tool_call(name=item["name"], args=args, id=new_call_id()))


def _read_block(body: str, out: ParsedOutput) -> None:
    body = _unwrap(body)
    values, rest = _decode_values(body)
    if not values or rest.strip(_SEPARATORS):
        out.invalid_tool_calls.append(_invalid(body, "the tool call is not valid JSON"))
        return
    for item in _flatten(values):
        _read_call(item, out)


def _names_a_tool(item: Any, names: Collection[str]) -> bool:
    if isinstance(item, dict) and isinstance(item.get("function"), dict):
        item = item["function"]
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not set(item) <= _CALL_KEYS:
        return False
    if names:
        return item["name"] in names
    return "arguments" in item or "parameters" in item


def parse_tool_calls(text: str, names: Collection[str] = ()) -> ParsedOutput:
    """Tool calls (with fresh ids) and the remaining text of a generated answer; see the module docstring.

    `names`: the bound tools; bare JSON counts as a call only when it names one of them.
    """
    out = ParsedOutput(content="")
    if OPEN in text:
        outside: list[str] = []
        position = 0
        for block in _BLOCK.finditer(text):
            outside.append(text[position:block.start()])
            position = block.end()
            _read_block(block.group(1), out)
        outside.append(text[position:])
        out.content = "".join(outside).strip()
        return out
    body = _unwrap(text)
    if _CALL_START.match(body):
        values, rest = _decode_values(body)
        items = _flatten(values)
        if items and all(_names_a_tool(item, names) for item in items):
            for item in items:
                _read_call(item, out)
            rest = rest.strip(_SEPARATORS)
            if _CALL_START.match(rest):  # a further call that did not parse
                out.invalid_tool_calls.append(_invalid(rest, "the tool call is not valid JSON"))
            else:
                out.content = rest
            return out
        if not items:
            name = _NAME.search(body)
            if name and (not names or name.group(1) in names):
                out.invalid_tool_calls.append(_invalid(body, "the tool call is not valid JSON"))
                return out
    out.content = text.strip()
    return out


def limit_calls(parsed: ParsedOutput, setup: ToolSetup) -> ParsedOutput:
    """Apply `parallel_tool_calls=False`: keep the first call only."""
    if not setup.parallel and len(parsed.tool_calls) > 1:
        parsed.tool_calls = parsed.tool_calls[:1]
    return parsed


# --------------------------------------------------------------------------------------------------
# Streaming: which generated text is surely answer text, and the final chunk's tool call chunks
# --------------------------------------------------------------------------------------------------


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper start of `marker`."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0


def streamable_span(buffer: str) -> tuple[int, int]:
    """`(start, end)` of the text generated so far that can be streamed as answer text with tools bound.

    Everything from a (possible) call opening on is held back for the final chunk, and so are leading
    and trailing whitespace, so that the streamed text is always a prefix of the parsed `content`.
    An answer that starts like a call (`{`, `[`, a fence, `<tool_call>`) is held back whole.
    """
    start = len(buffer) - len(buffer.lstrip())
    head = buffer[start:]
    if any(head.startswith(o) or o.startswith(head) for o in _STREAM_OPENERS):
        return start, start
    end = buffer.find(OPEN)
    if end < 0:
        end = len(buffer) - _partial_suffix(buffer, OPEN)
    end = len(buffer[:end].rstrip())
    return start, max(start, end)


def chunks_of(message: AIMessage) -> list[ToolCallChunk]:
    """The tool calls of a finished answer as the one set of chunks its last streamed chunk carries.

    LangChain re-reads chunk arguments with its partial-JSON parser when chunks are merged, so an
    invalid call whose arguments were only cut short arrives from `stream` as a call with the
    arguments read so far (as a hosted API's truncated stream would), while `invoke` lists it invalid.
    """
    chunks = [tool_call_chunk(name=c["name"], args=json.dumps(c["args"], ensure_ascii=False), id=c["id"], index=i)
              for i, c in enumerate(message.tool_calls)]
    offset = len(chunks)
    chunks += [tool_call_chunk(name=c.get("name"), args=c.get("args"), id=c.get("id"), index=offset + i)
               for i, c in enumerate(message.invalid_tool_calls)]
    return chunks


__all__ = [
    "SYSTEM_PROMPT", "ParsedOutput", "TemplateSupport", "ToolSetup", "chunks_of", "convert_tools", "history_as_text",
    "limit_calls", "parse_tool_calls", "render_prompt", "resolve_tool_choice", "streamable_span",
    "template_support", "tool_names",
]
