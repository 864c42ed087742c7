"""The plugin SDK: everything a dspy-turbo plugin imports, in one place.

A plugin imports ``dspy_turbo.plugin`` (and its submodules), the public names of
``dspy_turbo`` and ``dspy_turbo.testing``: nothing else of the core (an import-linter
contract checks this for the plugins in this repository). What is here is the plugin
API; the rest of the core may change between releases.

A plugin is a module of hook implementations, found through an entry point::

    # pyproject.toml
    [project.entry-points.dspy_turbo]
    mystore = "my_package.plugin"

    # my_package/plugin.py
    from dspy_turbo.plugin import hookimpl

    @hookimpl
    def dspy_turbo_cache_backends():
        from .backend import MyBackend      # heavy imports when the component is used
        return [MyBackend]

Every hook, its arguments and how results combine: ``dspy_turbo.plugin.hookspecs``.

**Components** are what the YAML picks with ``type:``. Each contract is a submodule, with
its base class or protocol, and a conformance suite in ``dspy_turbo.testing``:

- cache backend (a tier): :mod:`dspy_turbo.plugin.backend` (``CacheBackend``,
  ``BackendOptions``, ``Entry``, ``effective_ttl``), tested by ``CacheBackendSuite``;
- similarity index and embedder: :mod:`dspy_turbo.plugin.similarity` (``SimilarityIndex``,
  ``Embedder``), tested by ``SimilarityIndexSuite`` and ``EmbedderSuite``;
- batch strategy: :mod:`dspy_turbo.plugin.batch` (``BatchStrategy``, ``Runner``, ``Item``,
  ``BatchOptions``), tested by ``BatchStrategySuite``; the batch runner that drives the
  strategies (``BatchRunner``, receiving a ``BatchHost``; dspy-turbo-batching provides it)
  and the per-call policy around each real LM call: :mod:`dspy_turbo.plugin.calls`;
- model selector: :mod:`dspy_turbo.plugin.selector` (``ModelSelector``, ``Decision``,
  ``SelectorOptions``), tested by ``ModelSelectorSuite``;
- metric sink: :mod:`dspy_turbo.plugin.sink` (``MetricSink``), tested by ``MetricSinkSuite``;
- coordinator (offered by a tier shared by processes): :mod:`dspy_turbo.plugin.coordination`
  (``Coordinator``; ``SharedLog``, a log every process of a namespace reads, where the
  coordinator ``supports_logs``), tested by ``CoordinatorSuite``.

Shared by all of them:

- :mod:`~dspy_turbo.plugin.components`: ``Component`` (``name``, ``kind``, ``Options``,
  ``from_options(options, host)``), ``Options`` (unknown keys refused), ``SecretURL`` and
  ``SecretStr`` (masked everywhere), ``ComponentUnavailable`` (a missing package or model:
  a config error at the component's YAML path);
- :mod:`~dspy_turbo.plugin.units`: ``Duration``, ``TTL``, ``ByteSize`` option types and
  ``cache_dir()``;
- :mod:`~dspy_turbo.plugin.host`: ``Host``, what ``from_options`` receives (namespace,
  keys, default TTL, tiers, ``store``, event bus, coordinator), and ``FeatureHost``, what a
  feature's lifecycle hooks receive as ``turbo`` (also its ``config``, ``features``,
  ``publish``): everything a plugin may read of the host, each member documented;
- :mod:`~dspy_turbo.plugin.events`: ``Event`` and ``EVENTS``, every event kind with its
  fields;
- :mod:`~dspy_turbo.plugin.values`: ``encode_value``/``decode_value``, the tiers' value
  codec, for components that move values across a boundary of their own;
- :mod:`~dspy_turbo.plugin.sections`: ``ConfigSection``, a part of the YAML document a
  feature plugin owns (``dspy_turbo_config_sections``), validated with the rest of the file;
- :mod:`~dspy_turbo.plugin.signatures`: ``input_fields``/``output_names``, the fields a
  DSPy-rendered system message declares (for a plugin that reads LM requests: the semantic cache).

A component class is registered through its area's hook (``dspy_turbo_cache_backends``,
``dspy_turbo_similarity_search``, ``dspy_turbo_batch_strategies``,
``dspy_turbo_model_selectors``, ``dspy_turbo_metric_sinks``), tested by subclassing its
suite from ``dspy_turbo.testing``, and documented for authors on the "Writing plugins"
pages of the docs (one page per contract). ``examples/third_party_backend`` (a cache tier) and
``examples/third_party_index`` (a similarity index) are complete plugins to copy.
"""

from __future__ import annotations

from .._moved import moved_to_plugin
from .backend import BackendOptions, CacheBackend, DecodeError, Entry, IntegrityError, Signer, effective_ttl
from .batch import BatchError, BatchHost, BatchOptions, BatchRunner, BatchStrategy, Item, RateLimitSettings, RetrySettings, Runner
from .components import KINDS, Component, ComponentUnavailable, Options, SecretStr, SecretURL
from .coordination import CoordinationUnavailable, Coordinator, LocalCoordinator
from .events import EVENTS, Event, EventKind
from .hookspecs import hookimpl
from .host import EventBus, FeatureHost, Host, HostConfig, Tiers
from .sections import ConfigSection
from .selector import BudgetSettings, Decision, ModelSelector, ModelTier, SelectorOptions
from .similarity import Embedder, SimilarityIndex, WordVectorEmbedder
from .sink import MetricSink
from .units import TTL, ByteSize, Duration, cache_dir

__all__ = [
    "EVENTS", "KINDS", "TTL",
    "BackendOptions", "BatchError", "BatchHost", "BatchOptions", "BatchRunner", "BatchStrategy", "BudgetSettings",
    "ByteSize", "CacheBackend", "Component",
    "ComponentUnavailable", "ConfigSection", "CoordinationUnavailable", "Coordinator", "Decision", "DecodeError", "Duration",
    "Embedder", "Entry", "Event", "EventBus", "EventKind", "FeatureHost", "Host", "HostConfig", "IntegrityError", "Item", "LocalCoordinator",
    "MetricSink", "ModelSelector", "ModelTier", "Options", "RateLimitSettings", "RetrySettings", "Runner",
    "SecretStr", "SecretURL", "SelectorOptions", "Signer", "SimilarityIndex", "Tiers", "WordVectorEmbedder",
    "cache_dir", "effective_ttl", "hookimpl",
]

# The batch machinery's thread pool moved into dspy-turbo-batching (the old path warns for one release).
__getattr__ = moved_to_plugin(__name__, "dspy_turbo_batching.workers", "dspy-turbo-batching", ("WorkerPool",))
