"""Request and response bodies, as pydantic models: they validate input and make the OpenAPI schema.

Types are strict (a number is not a string, "1" is not a token id) so a client's mistake is a 422
that names the field, never a silent coercion. Unknown fields are refused, which catches typos
such as `input_typ` that would otherwise silently embed without the E5 prefix.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    create_model,
    field_validator,
)

InputType = Literal["query", "passage", "none"]
TokenIds = Annotated[list[StrictInt], Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddingsRequest(_Strict):
    """OpenAI `POST /v1/embeddings` body, plus the e5kit fields `input_type` and `truncate`."""

    input: StrictStr | list[StrictStr] | list[StrictInt] | list[TokenIds] = Field(  # narrowed per model
        description="A text, a list of texts, one token-id array, or a list of token-id arrays. Token ids are "
                    "this model's vocabulary without special tokens; the server adds them and the prefix.")
    model: StrictStr | None = Field(None, description="Accepted for compatibility; the server has one model.")
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

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if isinstance(value, list) and not value:
            raise ValueError("input must not be an empty list")
        return value


class EmbedRequest(_Strict):
    """TEI-style `POST /embed` body."""

    inputs: StrictStr | Annotated[list[StrictStr], Field(min_length=1)]
    truncate: StrictBool | None = Field(None, description="Cut over-long inputs instead of refusing them (413).")
    normalize: StrictBool = Field(True, description="L2-normalize the embeddings (E5 does).")
    prompt_name: StrictStr | None = Field(
        None, description="A prompt of the model ('query', 'passage') or 'none'. Default: the server's "
                          "--default-input-type.")


class SimilarityInputs(_Strict):
    source_sentence: StrictStr
    sentences: Annotated[list[StrictStr], Field(min_length=1)]


class SimilarityRequest(_Strict):
    """TEI-style `POST /similarity` body: cosine of the source against each sentence."""

    inputs: SimilarityInputs
    truncate: StrictBool | None = None
    prompt_name: StrictStr | None = Field(
        None, description="Prompt for all texts; default the server's --default-input-type ('query', as E5 "
                          "uses for symmetric tasks).")


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


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def request_models(*, roles: tuple[str, ...], vocab_size: int, dim: int) -> dict[str, type[BaseModel]]:
    """Request bodies for one model: `prompt_name` limited to its roles, token ids to its vocabulary,
    `dimensions` to its own dimension.

    Made per app so the OpenAPI schema states exactly what this server accepts.
    """
    names = Literal[roles]  # type: ignore[valid-type]
    prompt = (names | None, Field(None, description="One of the model's prompt names, or 'none'. Default: the "
                                                    "server's --default-input-type."))
    token = Annotated[StrictInt, Field(ge=0, lt=vocab_size), BeforeValidator(_integral)]
    inputs = (StrictStr | NonEmpty[list[StrictStr]] | NonEmpty[list[token]] | NonEmpty[list[NonEmpty[list[token]]]],
              Field(description=EmbeddingsRequest.model_fields["input"].description))
    return {
        "embeddings": create_model("EmbeddingsRequest", __base__=EmbeddingsRequest, input=inputs, dimensions=(
            Literal[dim] | None, Field(None, description=EmbeddingsRequest.model_fields["dimensions"].description))),
        "embed": create_model("EmbedRequest", __base__=EmbedRequest, prompt_name=prompt),
        "similarity": create_model("SimilarityRequest", __base__=SimilarityRequest, prompt_name=prompt),
    }


def _integral(value: object) -> object:
    """47.0 is the integer 47 in JSON (JSON Schema agrees); "47" and true stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class NonEmpty:
    """`NonEmpty[list[X]]`: a list with at least one item, stated in the schema (minItems 1)."""

    def __class_getitem__(cls, item: object) -> object:
        return Annotated[item, Field(min_length=1)]
