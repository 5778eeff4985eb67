"""Triton Python-backend model for GPU nodes: a larger instruction-tuned language model, run by vLLM,
scores the label words behind the contract of the image's models: TEXT + PROJECT (JSON: labels,
instructions, examples) in, PROBS (one probability per label, in the project's label order) out.

Shipped by the Helm chart (triton.instructModel): templates/triton-instruct-model.yaml renders this
file and its config.pbtxt (the vLLM settings as parameters) into a ConfigMap that the image's
`triton` command serves as a second model repository. It needs vLLM in the Triton image and GPUs;
neither exists where this repository is tested, so it is rendered and documented there, not run:
only the scoring below is tested, with a stand-in engine (services/tests/test_helm_chart.py).

For each item and order of the options, the prompt is the model's chat template around one user turn

    {instructions}
    Answer with one of: {label}, {label}, ...

    Text: {example text}
    Label: {example label}
    ... (examples, round-robin over the labels in the options' order)

    Text: {item}
    Label:

and a label's score is the sum of the log-probabilities of its tokens as the assistant's reply (vLLM
`prompt_logprobs` over the prompt followed by the label's tokens). Scores become probabilities with a
softmax over the label set and are averaged over several orders of the options, derived from the
sorted label set: permuting a project's labels permutes the output and changes nothing else.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

PROJECT_CACHE_SIZE = 64
PROMPT_MARGIN_TOKENS = 16  # the chat template's closing tokens, rounding


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


class VLLMEngine:
    """Sums of prompt log-probabilities from vLLM (imported here: the tests run without it)."""

    def __init__(self, params: dict[str, str]) -> None:
        from vllm import LLM, SamplingParams

        self.llm = LLM(
            model=params["model"],
            revision=params.get("revision") or None,
            tensor_parallel_size=int(params.get("tensor_parallel_size", "1")),
            max_model_len=int(params.get("max_model_len", "4096")),
            gpu_memory_utilization=float(params.get("gpu_memory_utilization", "0.85")),
            dtype=params.get("dtype", "auto"),
            max_num_seqs=int(params.get("max_num_seqs", "64")),
            # Prompt log-probabilities are what this model reads; vLLM releases either failed or
            # recomputed them with prefix caching on, so it stays off.
            enable_prefix_caching=False,
            seed=0,
        )
        # One forward pass per sequence: the label's tokens are at the end of the prompt.
        self.sampling = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        self.tokenizer = self.llm.get_tokenizer()

    def tail_logprobs(self, sequences: list[list[int]], tails: list[int]) -> list[float]:
        """For each token sequence, the sum of log p(token | tokens before it) over its last `tail` tokens."""
        outputs = self.llm.generate([{"prompt_token_ids": s} for s in sequences], self.sampling, use_tqdm=False)
        sums = []
        for tokens, tail, output in zip(sequences, tails, outputs, strict=True):
            logprobs = output.prompt_logprobs  # one dict per position (None for the first): token id -> Logprob
            sums.append(float(sum(logprobs[i][tokens[i]].logprob for i in range(len(tokens) - tail, len(tokens)))))
        return sums


class _ProjectPrompts:
    def __init__(self, labels: list[str], orders: list[list[int]], examples: dict[str, list[str]],
                 label_tokens: list[list[int]]) -> None:
        self.labels = labels
        self.orders = orders  # permutations of label indices: the options' order in each prompt
        self.examples = examples  # label -> example texts that fit the context
        self.label_tokens = label_tokens  # the reply tokens of each label (project order)


class InstructLMClassifier:
    def __init__(self, engine: Any, tokenizer: Any, max_model_len: int = 4096, option_orders: int = 2,
                 max_examples_per_label: int = 4, max_item_tokens: int = 512, chat_template: bool = True) -> None:
        if option_orders < 1:
            raise ValueError("option_orders must be at least 1")
        self.engine = engine
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.option_orders = option_orders
        self.max_examples_per_label = max_examples_per_label
        self.max_item_tokens = max_item_tokens
        self.chat_template = chat_template
        self._projects: OrderedDict[str, _ProjectPrompts] = OrderedDict()
        self._lock = threading.Lock()

    # -- prompts ----------------------------------------------------------------------------------
    def _orders(self, labels: list[str]) -> list[list[int]]:
        from labelstream.models.contract import option_orders

        return option_orders(labels, self.option_orders)

    def _user_text(self, project: dict[str, Any], labels: list[str], order: list[int],
                   examples: dict[str, list[str]], item: str) -> str:
        lines = []
        instructions = _one_line(project.get("instructions") or "")
        if instructions:
            lines.append(instructions)
        lines += ["Answer with one of: " + ", ".join(labels[i] for i in order), ""]
        for rank in range(max((len(v) for v in examples.values()), default=0)):
            for i in order:
                if rank < len(examples[labels[i]]):
                    lines += [f"Text: {examples[labels[i]][rank]}", f"Label: {labels[i]}", ""]
        lines += [f"Text: {item}", "Label:"]
        return "\n".join(lines)

    def _prompt_tokens(self, user_text: str) -> list[int]:
        if self.chat_template:
            return list(self.tokenizer.apply_chat_template([{"role": "user", "content": user_text}],
                                                           add_generation_prompt=True, tokenize=True))
        return list(self.tokenizer.encode(user_text, add_special_tokens=True))

    def _label_tokens(self, label: str) -> list[int]:
        # As the assistant's reply the label starts a turn; after "Label:" in plain text it follows a space.
        return list(self.tokenizer.encode(label if self.chat_template else " " + label, add_special_tokens=False))

    def _item_text(self, text: str) -> str:
        tokens = self.tokenizer.encode(_one_line(text), add_special_tokens=False)
        if len(tokens) <= self.max_item_tokens:
            return _one_line(text)
        return self.tokenizer.decode(tokens[:self.max_item_tokens])

    def prompts(self, project: dict[str, Any]) -> _ProjectPrompts:
        key = hashlib.sha256(json.dumps(project, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._projects:
                self._projects.move_to_end(key)
                return self._projects[key]
        labels = [str(label) for label in project.get("labels") or []]
        if not labels:
            raise ValueError("PROJECT must give a non-empty 'labels' list")
        if len(set(labels)) != len(labels) or not all(label.strip() for label in labels):
            raise ValueError("PROJECT labels must be distinct, non-blank strings")
        label_tokens = [self._label_tokens(_one_line(label)) for label in labels]
        if not all(label_tokens):
            raise ValueError("every label must have at least one token")
        examples: dict[str, list[str]] = {label: [] for label in labels}
        for example in project.get("examples") or []:
            label = example.get("label")
            if label in examples and len(examples[label]) < self.max_examples_per_label:
                examples[label].append(_one_line(example.get("text", "")))
        orders = self._orders(labels)
        # Room for the longest item and label: drop examples (from the fullest label) until it fits.
        budget = self.max_model_len - self.max_item_tokens - max(len(t) for t in label_tokens) - PROMPT_MARGIN_TOKENS
        while True:
            longest = max(len(self._prompt_tokens(self._user_text(project, labels, order, examples, "")))
                          for order in orders)
            if longest <= budget or not any(examples.values()):
                break
            fullest = max(examples, key=lambda label: len(examples[label]))
            examples[fullest].pop()
        if longest > budget:
            raise ValueError(f"the instructions and labels need {longest} tokens; max_model_len leaves {budget}")
        prompts = _ProjectPrompts(labels, orders, examples, label_tokens)
        with self._lock:
            self._projects[key] = prompts
            while len(self._projects) > PROJECT_CACHE_SIZE:
                self._projects.popitem(last=False)
        return prompts

    # -- scoring ----------------------------------------------------------------------------------
    def predict(self, texts: list[str], project: dict[str, Any]) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels)), rows summing to 1."""
        prompts = self.prompts(project)
        n_labels = len(prompts.labels)
        if not texts:
            return np.zeros((0, n_labels), dtype=np.float32)
        sequences, tails = [], []
        for text in texts:
            item = self._item_text(text)
            for order in prompts.orders:
                prompt = self._prompt_tokens(self._user_text(project, prompts.labels, order, prompts.examples, item))
                for tokens in prompts.label_tokens:
                    sequences.append(prompt + tokens)
                    tails.append(len(tokens))
        # One engine call for the whole batch: vLLM schedules the sequences together.
        scores = np.asarray(self.engine.tail_logprobs(sequences, tails), dtype=np.float64)
        scores = scores.reshape(len(texts), len(prompts.orders), n_labels)
        probs = np.array([np.mean([_softmax(per_order) for per_order in row], axis=0) for row in scores])
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        engine = VLLMEngine(params)
        self.classifier = InstructLMClassifier(
            engine, engine.tokenizer,
            max_model_len=int(params.get("max_model_len", "4096")),
            option_orders=int(params.get("option_orders", "2")),
            max_examples_per_label=int(params.get("max_examples_per_label", "4")),
            max_item_tokens=int(params.get("max_item_tokens", "512")),
            chat_template=params.get("chat_template", "true") == "true")
        self.name = args.get("model_name", "instruct_lm")

    def execute(self, requests: list[Any]) -> list[Any]:
        from labelstream.models.contract import execute

        return execute(requests, self.classifier.predict, self.name)
