"""langchain-tests' ChatModelIntegrationTests on the real embedded model (SmolLM2-135M-Instruct).

Inputs the model has no channel for (images, audio, PDF, JSON mode, Anthropic-style blocks, switching
models per call) are switched off through the suite's feature properties. Tests that the tool and
structured-output plumbing supports but a 135M model cannot pass are expected failures, each saying
what the model did instead.
"""

from __future__ import annotations

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from uno_graph.chat_model import UnoChatModel

# The suite's coroutine tests carry no asyncio mark and pytest-asyncio runs in strict mode here, so the
# mark is set module-wide; the warning it raises on the synchronous tests is silenced.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:.*marked with '@pytest.mark.asyncio' but it is not an async function"),
]

MAX_NEW = 32
MODEL_PARAMS = pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
SCHEMA_TYPES = pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])

NO_TOOL_CALL = ("the model answers in prose (or echoes the question) instead of emitting a "
                "<tool_call> block, so the message has no tool_calls")
NO_FORCED_CALL = ("asked 'Hello!' with two tools and tool_choice='any', the model starts a tool call but its "
                  "JSON is not valid within the token budget, so it becomes an invalid_tool_call and "
                  "tool_calls is empty")
NO_JOKE = ("asked for a cat joke with a setup/punchline schema, the model does not produce a valid "
           "object with both fields, so the parsed result is None")


@pytest.fixture(scope="module", autouse=True)
def _embedded_model() -> None:
    """Load the embedded model once; every `UnoChatModel()` after this reuses the process-wide cache."""
    UnoChatModel(max_new_tokens=1).invoke("hi")


class TestUnoChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[UnoChatModel]:
        return UnoChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"max_new_tokens": MAX_NEW}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False  # one model per instance; a per-call `model=` is not accepted

    @MODEL_PARAMS
    @pytest.mark.xfail(reason=NO_TOOL_CALL)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(reason=NO_TOOL_CALL)
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(reason=NO_TOOL_CALL + " for the argument-less magic_function_no_args")
    def test_tool_calling_with_no_arguments(self, model: BaseChatModel) -> None:
        super().test_tool_calling_with_no_arguments(model)

    @pytest.mark.xfail(reason=NO_FORCED_CALL)
    def test_tool_choice(self, model: BaseChatModel) -> None:
        super().test_tool_choice(model)

    @MODEL_PARAMS
    @pytest.mark.xfail(reason="asked for the weather in San Francisco with get_weather bound, " + NO_TOOL_CALL)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @SCHEMA_TYPES
    @pytest.mark.xfail(reason=NO_JOKE)
    def test_structured_output(self, model: BaseChatModel, schema_type: str) -> None:
        super().test_structured_output(model, schema_type)

    @SCHEMA_TYPES
    @pytest.mark.xfail(reason=NO_JOKE)
    async def test_structured_output_async(self, model: BaseChatModel, schema_type: str) -> None:
        await super().test_structured_output_async(model, schema_type)

    @pytest.mark.xfail(reason=NO_JOKE + " (pydantic.v1 schema)")
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @pytest.mark.xfail(reason=NO_JOKE + " (schema with an optional field)")
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)
