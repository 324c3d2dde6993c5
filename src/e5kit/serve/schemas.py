"""Request and response bodies, as pydantic models: they validate input and make the OpenAPI schema.

Types are strict (a number is not a string, "1" is not a token id) so a client's mistake is a 422
that names the field, never a silent coercion. Unknown fields are refused, which catches typos
such as `input_typ` that would otherwise silently embed without the E5 prefix. The OpenAI `input`
field is read by `inputs.read_input`, which names the index of a bad item.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from e5kit.model.tokenize import check_text
from e5kit.serve.inputs import read_input

InputType = Literal["query", "passage", "none"]
# TEI's spec spells the directions "Left"/"Right", huggingface_hub sends "left"/"right": both are accepted
Direction = Literal["right", "left", "Right", "Left"]
Text = Annotated[StrictStr, AfterValidator(check_text)]  # valid Unicode: no lone surrogates
_INSTRUCTION = ("e5kit: for instruct models (multilingual-e5-large-instruct, e5-mistral-7b-instruct), the task "
                "description their queries are formatted with: 'Instruct: {instruction}\\nQuery: {text}'. Default: "
                "the model's documented default. Only with the query role; refused (422) by a model without "
                "instruct prompts.")
Instruction = Annotated[StrictStr, Field(min_length=1, max_length=2000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def input_schema(vocab: int | None) -> dict[str, Any]:
    """JSON schema of the OpenAI `input` field (what `read_input` accepts)."""
    token = {"type": "integer", "minimum": 0, **({"exclusiveMaximum": vocab} if vocab else {})}
    ids = {"type": "array", "items": token, "minItems": 1}
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}, ids,
                      {"type": "array", "items": ids, "minItems": 1}],
            "description": "A text, a list of texts, one token-id list or a list of token-id lists. Token ids are "
                           "read as the server's --token-ids says: tiktoken cl100k_base ids by default (what "
                           "OpenAI clients such as LangChain send), decoded to text, then embedded with the "
                           "model's prompt and tokenizer."}


class EmbeddingsRequest(_Strict):
    """OpenAI `POST /v1/embeddings` body, plus the e5kit fields `input_type` and `truncate`."""

    input: Annotated[Any, WithJsonSchema(input_schema(None))]  # checked by read_input (see request_models)
    model: StrictStr | None = Field(
        None, description="Which served model (GET /v1/models). A server with one model accepts any name.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="base64: little-endian float32 bytes, as the OpenAI API sends them.")
    dimensions: StrictInt | None = Field(None, description="Only the model's own dimension is accepted: "
                                                           "E5 models are not trained for shortened vectors.")
    user: StrictStr | None = None
    input_type: InputType | None = Field(
        None, description="e5kit: 'query' adds the model's query prefix ('query: ' for E5), 'passage' the passage "
                          "prefix, 'none' nothing. Default: the server's --default-input-type (query).")
    truncate: StrictBool | None = Field(
        None, description="e5kit: cut inputs over the model's token limit instead of refusing them (413). "
                          "Default: the server's --auto-truncate (off).")
    instruction: Instruction | None = Field(None, description=_INSTRUCTION)


_TRUNCATE = "Cut over-long inputs instead of refusing them (413). Default: the server's --auto-truncate."
_DIRECTION = ("Which end a cut removes: 'right' (default) keeps the start of the text, 'left' keeps its end. "
              "The prompt prefix is always kept.")
_MODEL = "e5kit: which served model (GET /v1/models); default the first one."


class EmbedRequest(_Strict):
    """TEI-style `POST /embed` (and `POST /`) body."""

    inputs: Text | Annotated[list[Text], Field(min_length=1)]
    truncate: StrictBool | None = Field(None, description=_TRUNCATE)
    truncation_direction: Direction | None = Field(None, description=_DIRECTION)
    normalize: StrictBool = Field(True, description="L2-normalize the embeddings (E5 does).")
    prompt_name: StrictStr | None = Field(
        None, description="A prompt of the model ('query', 'passage') or 'none'. Default: the server's "
                          "--default-input-type.")
    instruction: Instruction | None = Field(None, description=_INSTRUCTION)
    model: StrictStr | None = Field(None, description=_MODEL)


class SimilarityInputs(_Strict):
    source_sentence: Text
    sentences: Annotated[list[Text], Field(min_length=1)]


class SimilarityParameters(_Strict):
    """TEI's `parameters` of `/similarity`."""

    truncate: StrictBool | None = Field(None, description=_TRUNCATE)
    truncation_direction: Direction | None = Field(None, description=_DIRECTION)
    prompt_name: StrictStr | None = None


_TWICE = ("truncate", "truncation_direction", "prompt_name")


def _given_twice(name: str) -> dict[str, Any]:
    """JSON schema of a body giving option `name` non-null both at the top level and in `parameters`."""
    set_ = {"not": {"type": "null"}}
    return {"type": "object", "required": [name, "parameters"],
            "properties": {name: set_, "parameters": {"type": "object", "required": [name],
                                                      "properties": {name: set_}}}}


class SimilarityRequest(_Strict):
    """TEI-style `POST /similarity` body: cosine of the source against each sentence.

    The options may come in TEI's `parameters` object or at the top level, not in both (said in the schema too).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=lambda schema: schema.update(
        allOf=[{"not": _given_twice(name)} for name in _TWICE]))

    inputs: SimilarityInputs
    parameters: SimilarityParameters | None = None
    truncate: StrictBool | None = None
    truncation_direction: Direction | None = None
    prompt_name: StrictStr | None = Field(
        None, description="Prompt for all texts; default the server's --default-input-type ('query', as E5 "
                          "uses for symmetric tasks).")
    instruction: Instruction | None = Field(None, description=_INSTRUCTION)
    model: StrictStr | None = Field(None, description=_MODEL)

    def option(self, name: str) -> Any:
        """An option from `parameters` or the top level (a value in both is refused when the body is read)."""
        inner = getattr(self.parameters, name, None) if self.parameters is not None else None
        return inner if inner is not None else getattr(self, name)

    @model_validator(mode="after")
    def _not_twice(self) -> SimilarityRequest:
        if self.parameters is not None:
            for name in _TWICE:
                if getattr(self.parameters, name) is not None and getattr(self, name) is not None:
                    raise ValueError(f"{name} is given both at the top level and in parameters; give it once")
        return self


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _no_instruction(value: Any) -> None:
    if value is not None:
        raise ValueError("no model served here has instruct prompts; instruction is only for instruct models "
                         "such as multilingual-e5-large-instruct (docs/models.md)")
    return None


def request_models(*, roles: tuple[str, ...], dims: tuple[int, ...], vocab: int | None,
                   vocab_name: str, instruct: bool = True) -> dict[str, type[BaseModel]]:
    """Request bodies for one server: `prompt_name` limited to its models' roles, `dimensions` to their
    dimensions, token ids to the vocabulary `--token-ids` reads them in (None: any id >= 0), `instruction`
    refused (null only) unless some served model is an instruct one.

    Made per app so the OpenAPI schema states exactly what this server accepts; each model's own
    limits are checked again when a request is routed to it.
    """
    names = Literal[roles]  # type: ignore[valid-type]
    prompt = (names | None, Field(None, description="One of the model's prompt names, or 'none'. Default: the "
                                                    "server's --default-input-type."))
    reader = partial(read_input, vocab=vocab, vocab_name=vocab_name)
    embeddings = create_model(
        "EmbeddingsRequest", __base__=EmbeddingsRequest,
        __validators__={"_input": field_validator("input")(lambda cls, v: reader(v))},
        input=(Annotated[Any, WithJsonSchema(input_schema(vocab))], ...),
        dimensions=(Literal[dims] | None,  # type: ignore[valid-type]
                    Field(None, description=EmbeddingsRequest.model_fields["dimensions"].description)))
    extra: dict[str, Any] = {} if instruct else {"instruction": (
        Annotated[Any, BeforeValidator(_no_instruction), WithJsonSchema({"type": "null"})],
        Field(None, description="Refused: no model served here has instruct prompts."))}
    embeddings = create_model("EmbeddingsRequest", __base__=embeddings, **extra)
    similarity_parameters = create_model("SimilarityParameters", __base__=SimilarityParameters, prompt_name=prompt)
    return {
        "embeddings": embeddings,
        "embed": create_model("EmbedRequest", __base__=EmbedRequest, prompt_name=prompt, **extra),
        "similarity": create_model("SimilarityRequest", __base__=SimilarityRequest, prompt_name=prompt,
                                   parameters=(similarity_parameters | None, None), **extra),
    }
