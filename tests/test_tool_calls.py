"""Tool calling and structured output on UnoChatModel: parsing, prompt rendering, streaming, agents.

Most tests script what the engine "generates" (the tiny random LM cannot call tools), so they check
everything around generation: how tools and tool history reach the prompt, how the text becomes
`tool_calls`, and how LangChain's structured output and agents use them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypedDict

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from transformers import AutoTokenizer

from uno_graph.chat_model import UnoChatModel
from uno_graph.engines.base import Row
from uno_graph.errors import ConfigError
from uno_graph.tool_calls import (
    convert_tools,
    history_as_text,
    parse_tool_calls,
    render_prompt,
    streamable_span,
    template_support,
)

NAMES = ("get_weather", "add")


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny and 21 C in {city}"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Weather(BaseModel):
    """The weather in a city."""

    city: str = Field(description="the city")
    temperature_c: float


class WeatherDict(TypedDict):
    """The weather in a city."""

    city: str
    temperature_c: float


WEATHER_SCHEMA = {
    "title": "weather_report", "description": "The weather in a city.", "type": "object",
    "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"}},
    "required": ["city", "temperature_c"],
}


# -- parsing, one test per output format --------------------------------------------------------------


def test_parse_smollm2_list_in_one_block():
    text = ('<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
            '{"name": "add", "arguments": {"a": 1, "b": 2}}]</tool_call>')
    out = parse_tool_calls(text, NAMES)
    assert [(c["name"], c["args"]) for c in out.tool_calls] == [("get_weather", {"city": "Paris"}),
                                                                ("add", {"a": 1, "b": 2})]
    assert out.content == "" and not out.invalid_tool_calls
    ids = [c["id"] for c in out.tool_calls]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2


def test_parse_hermes_blocks_with_text_and_string_arguments():
    text = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}\n</tool_call>')
    out = parse_tool_calls(text, NAMES)
    assert [(c["name"], c["args"]) for c in out.tool_calls] == [("get_weather", {"city": "Paris"}),
                                                                ("add", {"a": 1, "b": 2})]
    assert out.content == "Let me check."


@pytest.mark.parametrize("text", [
    '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
    '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    ' [{"name": "get_weather", "parameters": {"city": "Paris"}}] ',
])
def test_parse_llama3_bare_json(text):
    out = parse_tool_calls(text, NAMES)
    assert [(c["name"], c["args"]) for c in out.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert out.content == "" and not out.invalid_tool_calls


def test_parse_llama3_several_calls_separated_by_semicolons():
    text = '{"name": "get_weather", "parameters": {"city": "Paris"}}; {"name": "add", "parameters": {"a": 1, "b": 2}}'
    assert [c["name"] for c in parse_tool_calls(text, NAMES).tool_calls] == ["get_weather", "add"]


def test_bare_json_that_names_no_bound_tool_stays_text():
    for text in ('{"name": "Bob", "age": 3}', '{"name": "Bob", "arguments": {}}', "[1, 2]", "Just text."):
        out = parse_tool_calls(text, NAMES)
        assert out.content == text and not out.tool_calls and not out.invalid_tool_calls


@pytest.mark.parametrize(("text", "args"), [
    ('<tool_call>[{"name": "get_weather", "arguments": {"city": Paris}}]</tool_call>', '{"city": Paris}'),
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par', '{"city": "Par'),  # cut short
    ('{"name": "get_weather", "parameters": {"city": "Paris"', '{"city": "Paris"'),  # bare, cut short
])
def test_invalid_json_goes_to_invalid_tool_calls(text, args):
    out = parse_tool_calls(text, NAMES)
    assert not out.tool_calls and out.content == ""
    [bad] = out.invalid_tool_calls
    assert bad["name"] == "get_weather" and bad["args"] == args and bad["id"].startswith("call_")
    assert "not valid JSON" in bad["error"]


def test_arguments_that_are_not_an_object_are_invalid():
    out = parse_tool_calls('<tool_call>[{"name": "get_weather", "arguments": 1}]</tool_call>', NAMES)
    assert not out.tool_calls and out.invalid_tool_calls[0]["args"] == "1"


def test_streamable_span_holds_back_possible_calls():
    assert streamable_span("Hello there") == (0, 11)
    assert streamable_span("Sure. <tool_call>[{") == (0, 5)
    assert streamable_span("Sure. <tool_") == (0, 5)  # a marker may be starting
    assert streamable_span("  Sure ") == (2, 6)
    for held in ("", "  ", "{", '{"name"', "<tool", "```json", "[{"):
        start, end = streamable_span(held)
        assert end == start


# -- prompt rendering -----------------------------------------------------------------------------------

NATIVE_HERMES = (
    "{%- if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>\n"
    "Call a function with <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call><|im_end|>\n{%- endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{%- for c in m.tool_calls or [] %}<tool_call>{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}</tool_call>{%- endfor %}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
NATIVE_LLAMA = (
    "{%- if tools %}Functions: {% for t in tools %}{{ t | tojson }}{% endfor %}\n"
    "Answer with {\"name\": function name, \"parameters\": arguments}\n{%- endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture()
def tokenizer(tiny_lm_dir):
    return AutoTokenizer.from_pretrained(tiny_lm_dir)


def test_template_without_tools_gets_the_smollm2_system_prompt(tokenizer):
    support = template_support(tokenizer)
    assert not support.tools and not support.history
    tools = convert_tools([get_weather, add])
    prompt, setup = render_prompt(tokenizer, [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Weather in Paris?"}], tools)
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\nYou can call functions.")
    assert '<tools>[{"name": "get_weather"' in prompt and "<tool_call>[{" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert setup.names == NAMES and setup.prefix == ""


def test_forced_calls_prefill_the_answer(tokenizer):
    tools = convert_tools([get_weather, add])
    user = [{"role": "user", "content": "Weather in Paris?"}]
    prompt, setup = render_prompt(tokenizer, user, tools, "any")
    assert setup.prefix == '<tool_call>[{"name": "' and prompt.endswith("assistant\n" + setup.prefix)
    _, named = render_prompt(tokenizer, user, tools, "get_weather")
    assert named.prefix == '<tool_call>[{"name": "get_weather", "arguments": {"city": "'
    _, single = render_prompt(tokenizer, user, tools[1:], "required")
    assert single.prefix == '<tool_call>[{"name": "add", "arguments": {"a": '
    prompt, none = render_prompt(tokenizer, user, tools, "none")
    assert none is None and "<tools>" not in prompt
    with pytest.raises(ConfigError, match="not a bound tool"):
        render_prompt(tokenizer, user, tools, "get_time")


def test_tool_history_is_rendered_as_text_when_the_template_drops_it(tokenizer):
    from uno_graph.chat_model import messages_to_dicts

    history = messages_to_dicts([
        HumanMessage("Weather in Paris and 1+2?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"},
                                  {"name": "add", "args": {"a": 1, "b": 2}, "id": "c2"}]),
        ToolMessage("Sunny", tool_call_id="c1", name="get_weather"),
        ToolMessage("3", tool_call_id="c2", name="add"),
    ])
    text = history_as_text(history)
    assert [m["role"] for m in text] == ["user", "assistant", "user"]
    assert text[1]["content"] == ('<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                                  '{"name": "add", "arguments": {"a": 1, "b": 2}}]</tool_call>')
    assert text[2]["content"] == ('<tool_response>\n{"name": "get_weather", "content": "Sunny"}\n</tool_response>\n'
                                  '<tool_response>\n{"name": "add", "content": "3"}\n</tool_response>')
    prompt, _ = render_prompt(tokenizer, history, convert_tools([get_weather, add]))
    assert '<|im_start|>assistant\n<tool_call>[{"name": "get_weather"' in prompt
    assert "<|im_start|>user\n<tool_response>" in prompt


def test_native_hermes_template_renders_tools_and_history_itself(tokenizer):
    tokenizer.chat_template = NATIVE_HERMES
    support = template_support(tokenizer)
    assert support.tools and support.history and support.hermes
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    history = [{"role": "user", "content": "Weather?"},
               {"role": "assistant", "content": "", "tool_calls": [call]},
               {"role": "tool", "content": "Rain", "tool_call_id": "c1", "name": "get_weather"}]
    prompt, setup = render_prompt(tokenizer, history, convert_tools([get_weather]), "any")
    assert prompt.startswith("<|im_start|>system\n<tools>") and "You can call functions" not in prompt
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>' in prompt
    assert "<|im_start|>tool\nRain" in prompt
    assert setup.prefix == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "'


def test_native_llama_style_template_forces_bare_json(tokenizer):
    tokenizer.chat_template = NATIVE_LLAMA
    support = template_support(tokenizer)
    assert support.tools and not support.history and not support.hermes
    _, setup = render_prompt(tokenizer, [{"role": "user", "content": "1+2?"}], convert_tools([get_weather, add]),
                             "add")
    assert setup.prefix == '{"name": "add", "parameters": {"a": '


# -- the chat model with a scripted engine -------------------------------------------------------------


@pytest.fixture(scope="module")
def llm(tiny_lm_dir) -> UnoChatModel:
    return UnoChatModel.from_pretrained(str(tiny_lm_dir), max_new_tokens=8)


def _continuation(prompt: str, full: str) -> str:
    """What the model writes after a prompt that may already end with the first part of `full`."""
    for k in range(min(len(prompt), len(full)), 0, -1):
        if prompt.endswith(full[:k]):
            return full[k:]
    return full


class Script:
    """Stands in for the engine: answers each prompt with `reply(prompt)` (continuing any prefill)."""

    def __init__(self, llm: UnoChatModel, reply: Callable[[str], str]) -> None:
        self.llm, self.reply, self.prompts = llm, reply, []

    def _text(self, ids: list[int]) -> str:
        prompt = self.llm.tokenizer.decode(ids)
        self.prompts.append(prompt)
        return _continuation(prompt, self.reply(prompt))

    def generate(self, prompts, internals, params, stops, **kwargs):
        texts = [self._text(ids) for ids in prompts]
        return [Row(ids=[], reason="eos", text=t, n_tokens=len(t.split())) for t in texts]

    def stream(self, prompt, internal, params, stops, cancel):
        text = self._text(prompt)
        for i in range(0, len(text), 3):
            yield text[i:i + 3]
        yield Row(ids=[], reason="eos", text=text, n_tokens=len(text.split()))


@pytest.fixture()
def script(llm, monkeypatch):
    def install(reply: Callable[[str], str] | str) -> Script:
        fake = Script(llm, reply if callable(reply) else (lambda prompt: reply))
        monkeypatch.setattr(llm._engine, "generate", fake.generate)
        monkeypatch.setattr(llm._engine, "stream", fake.stream)
        return fake
    return install


CALL = '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</tool_call>'


def test_a_generated_tool_call_becomes_tool_calls(llm, script):
    fake = script(CALL)
    answer = llm.bind_tools([get_weather, add]).invoke("Weather in Paris?")
    assert answer.content == ""
    assert [(c["name"], c["args"]) for c in answer.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert answer.tool_calls[0]["id"].startswith("call_")
    assert answer.response_metadata["finish_reason"] == "tool_calls"
    assert "<tools>" in fake.prompts[0]
    plain = llm.invoke("Weather in Paris?")  # no tools bound: the same text is just text
    assert plain.content == CALL and not plain.tool_calls


def test_bound_tools_answer_in_text_when_no_call(llm, script):
    script(" It is sunny. ")
    answer = llm.bind_tools([get_weather]).invoke("hi")
    assert answer.content == "It is sunny." and not answer.tool_calls and not answer.invalid_tool_calls


def test_invalid_call_reaches_invalid_tool_calls(llm, script):
    script('<tool_call>[{"name": "get_weather", "arguments": {"city": Paris}}]</tool_call>')
    answer = llm.bind_tools([get_weather]).invoke("Weather?")
    assert not answer.tool_calls and answer.invalid_tool_calls[0]["name"] == "get_weather"
    assert answer.response_metadata["finish_reason"] == "stop"


def test_parallel_tool_calls_false_keeps_the_first(llm, script):
    script('<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
           '{"name": "add", "arguments": {"a": 1, "b": 2}}]</tool_call>')
    answer = llm.bind_tools([get_weather, add], parallel_tool_calls=False).invoke("?")
    assert [c["name"] for c in answer.tool_calls] == ["get_weather"]


def test_a_forced_call_ends_at_its_block_without_the_repetition_penalty(llm, script, tiny_lm_dir):
    script(CALL + " The weather in Paris is Paris.")
    forced = llm.bind_tools([get_weather], tool_choice="any").invoke("Weather in Paris?")
    assert forced.content == "" and forced.tool_calls[0]["args"] == {"city": "Paris"}
    free = llm.bind_tools([get_weather]).invoke("Weather in Paris?")
    assert free.content == "The weather in Paris is Paris." and free.tool_calls
    tools = {"tools": convert_tools([get_weather])}
    job = llm._prepare([HumanMessage("hi")], None, {**tools, "tool_choice": "any"})
    assert job.params.repetition_penalty == 1.0 and job.stops == ("</tool_call>",)
    assert llm._prepare([HumanMessage("hi")], None, tools).params.repetition_penalty == llm.repetition_penalty
    chosen = UnoChatModel(model=str(tiny_lm_dir), repetition_penalty=1.3)
    assert chosen._prepare([HumanMessage("hi")], None, {**tools, "tool_choice": "any"}).params.repetition_penalty == 1.3


def test_unknown_tool_choice_fails_at_bind_time(llm):
    with pytest.raises(ConfigError, match="not a bound tool"):
        llm.bind_tools([get_weather], tool_choice="get_time")


def test_streaming_yields_text_then_tool_call_chunks(llm, script):
    script("Let me check. " + CALL)
    chunks = list(llm.bind_tools([get_weather]).stream("Weather in Paris?"))
    assert "".join(c.content for c in chunks[:-1]) == "Let me check." and len(chunks) > 2
    assert not any("<" in c.content for c in chunks)
    assert [c["name"] for c in chunks[-1].tool_call_chunks] == ["get_weather"]
    whole = chunks[0]
    for c in chunks[1:]:
        whole += c
    assert isinstance(whole, AIMessageChunk) and whole.content == "Let me check."
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_streaming_a_forced_call_is_one_chunk(llm, script):
    script(CALL)
    chunks = list(llm.bind_tools([get_weather], tool_choice="any").stream("Weather in Paris?"))
    assert [c.content for c in chunks] == [""]
    assert chunks[0].tool_calls[0]["args"] == {"city": "Paris"}


def test_batch_with_tools(llm, script):
    script(lambda prompt: CALL if "Paris" in prompt else "No idea.")
    answers = llm.bind_tools([get_weather]).batch(["Weather in Paris?", "Weather on Mars?"])
    assert answers[0].tool_calls[0]["args"] == {"city": "Paris"}
    assert answers[1].content == "No idea." and not answers[1].tool_calls


def test_tools_count_in_prompt_tokens(llm):
    messages = [HumanMessage("Weather in Paris?")]
    assert llm.get_num_tokens_from_messages(messages, tools=[get_weather]) > llm.get_num_tokens_from_messages(messages)


def test_forced_call_on_the_real_tiny_lm_is_a_call_of_that_tool(llm):
    """No script: the random LM writes whatever follows the prefill, which names the tool."""
    answer = llm.bind_tools([get_weather, add], tool_choice="get_weather").invoke("Weather in Paris?")
    calls = answer.tool_calls + answer.invalid_tool_calls
    assert calls and {c["name"] for c in calls} == {"get_weather"}
    assert answer.usage_metadata["output_tokens"] <= 8


# -- structured output -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Weather", "WeatherDict", "weather_report"])
def test_with_structured_output(llm, script, name):
    schema = {"Weather": Weather, "WeatherDict": WeatherDict, "weather_report": WEATHER_SCHEMA}[name]
    fake = script(f'<tool_call>[{{"name": "{name}", "arguments": {{"city": "Paris", "temperature_c": 21.5}}}}]'
                  "</tool_call>")
    result = llm.with_structured_output(schema).invoke("Weather in Paris?")
    expected = {"city": "Paris", "temperature_c": 21.5}
    assert (result.model_dump() if name == "Weather" else result) == expected
    assert fake.prompts[0].endswith(f'"name": "{name}", "arguments": {{"city": "')  # the call was forced


def test_with_structured_output_include_raw(llm, script):
    script('<tool_call>[{"name": "Weather", "arguments": {"city": "Oslo", "temperature_c": 3}}]</tool_call>')
    out = llm.with_structured_output(Weather, include_raw=True).invoke("Weather in Oslo?")
    assert out["parsed"] == Weather(city="Oslo", temperature_c=3) and out["parsing_error"] is None
    assert isinstance(out["raw"], AIMessage) and out["raw"].tool_calls[0]["name"] == "Weather"
    script('<tool_call>[{"name": "Weather", "arguments": {"city": "Oslo", "temperature_c": "cold"}}]</tool_call>')
    bad = llm.with_structured_output(Weather, include_raw=True).invoke("Weather in Oslo?")
    assert bad["parsed"] is None and bad["parsing_error"] is not None


# -- a LangChain agent -------------------------------------------------------------------------------------


def test_create_agent_runs_a_tool_turn(llm, script):
    from langchain.agents import create_agent

    def reply(prompt: str) -> str:
        if "<tool_response>" not in prompt:
            return ('<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                    '{"name": "add", "arguments": {"a": 20, "b": 1}}]</tool_call>')
        return "It is sunny and 21 C in Paris."

    fake = script(reply)
    agent = create_agent(llm, tools=[get_weather, add], system_prompt="Use the tools.")
    messages = agent.invoke({"messages": [("user", "Weather in Paris?")]})["messages"]
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage", "ToolMessage", "ToolMessage",
                                                    "AIMessage"]
    assert [m.content for m in messages[2:4]] == ["Sunny and 21 C in Paris", "21"]
    assert messages[-1].content == "It is sunny and 21 C in Paris." and not messages[-1].tool_calls
    second = fake.prompts[1]  # the tool turn went back to the model as text
    assert '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}' in second
    assert json.dumps({"name": "add", "content": "21"}) in second
    assert second.startswith("<|im_start|>system\nUse the tools.\n\nYou can call functions.")
