"""`factorygate image`: resolve each reference, stream its layers once, run the image checks.

A reference is a local OCI layout (``DIR`` or ``DIR:TAG``), an OCI or docker archive (``FILE.tar``),
or else a registry reference. One unreadable image is one input error; the others are still read.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factorygate.engine import Engine, PartialScan, ScanResult
from factorygate.errors import FactorygateError
from factorygate.facts.image import ImageFacts, image_facts, want
from factorygate.oci.inventory import coverage_problems, find_os_release, inventory
from factorygate.oci.layers import DEFAULT_LIMITS, Limits, assemble
from factorygate.oci.model import ImageError, ResolvedImage
from factorygate.oci.registry import RegistryOptions


@dataclass(frozen=True)
class ImageOptions:
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    limits: Limits = DEFAULT_LIMITS
    sbom: str | None = None  # a file (one image) or a directory (one file per image)


@dataclass
class AnalysedImage:
    """What one reference gave: its facts (for the checks and the SBOM) or the error that stopped it."""

    ref: str
    facts: ImageFacts | None = None
    error: str | None = None
    sbom: dict[str, Any] | None = None


def resolve(ref: str, opts: ImageOptions) -> ResolvedImage:
    """A local layout or archive when ``ref`` names one, else a registry pull."""
    from factorygate.oci.local import open_local

    local = open_local(ref, opts.registry.platform)
    if local is not None:
        return local
    from factorygate.oci.registry import open_registry

    return open_registry(ref, opts.registry)


def analyse(ref: str, opts: ImageOptions) -> ImageFacts:
    """Resolve ``ref`` and read its layers into facts (raises ImageError on anything unreadable)."""
    image = resolve(ref, opts)
    try:
        fs = assemble(image, want, opts.limits)
    finally:
        image.close()
    packages, problems = inventory(fs.contents, find_os_release(fs.contents))
    problems += coverage_problems(fs.files)  # databases too large to read, or in a format not read
    return image_facts(image, fs, packages, problems)


def sbom_document(facts: ImageFacts) -> dict[str, Any]:
    import datetime as dt

    from factorygate import __version__
    from factorygate.oci.inventory import parse_os_release
    from factorygate.render.cyclonedx import ImageInfo, sbom

    img = facts.image
    arch = img.config.get("architecture")
    info = ImageInfo(
        name=facts.name,
        manifest_digest=img.manifest_digest,
        repository_url=f"{img.registry}/{img.repository}" if img.registry and img.repository else None,
        architecture=arch if isinstance(arch, str) else None,
        config_digest=img.config_digest,
        os_release=parse_os_release(find_os_release(facts.fs.contents)),
    )
    timestamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return sbom(info, facts.packages, __version__, timestamp)


def sbom_paths(target: str, refs: Sequence[str]) -> dict[str, Path]:
    """Where each image's SBOM goes: ``target`` itself for one image, else one file per image in it."""
    path = Path(target)
    if len(refs) == 1 and not path.is_dir():
        return {refs[0]: path}
    if not path.is_dir():
        raise FactorygateError(f"--sbom {target}: with several images, name an existing directory")
    safe = {r: "".join(c if c.isalnum() or c in "._-" else "_" for c in r).strip("._") or "image" for r in refs}
    return {r: path / f"{i + 1:02d}-{name[:100]}.cdx.json" for i, (r, name) in enumerate(safe.items())}


def scan_images(engine: Engine, refs: Sequence[str], opts: ImageOptions) -> ScanResult:
    """Analyse every reference in turn (each streams its layers once), then report them together."""
    from factorygate.render.cyclonedx import write_sbom

    started = time.perf_counter()
    targets = sbom_paths(opts.sbom, refs) if opts.sbom else {}
    parts: list[PartialScan] = []
    for ref in refs:
        try:
            facts = analyse(ref, opts)
        except ImageError as e:
            parts.append(engine.image_error(ref, e.diagnostics()))
            continue
        if engine.policy.enabled("img-signed"):
            from factorygate.supply.evidence import gather

            facts.signatures = gather(facts.image, ref, engine.params.trusted_signing_keys, opts.registry)
            if facts.signatures.problem:
                parts.append(engine.image_error(ref, f"signature lookup (CICDG-2.10): {facts.signatures.problem}"))
        parts.append(engine.evaluate_image(facts))
        parts.extend(engine.image_error(ref, f"package inventory: {problem}") for problem in facts.inventory_problems)
        if ref in targets:
            try:
                write_sbom(targets[ref], sbom_document(facts))
            except OSError as e:
                parts.append(engine.image_error(ref, f"cannot write SBOM {targets[ref]}: {e.strerror or e}"))
    return engine.finish(parts, list(refs), started, {"image"})
