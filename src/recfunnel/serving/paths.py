"""The artifacts root: the one directory tree a running server may load funnels from."""

from __future__ import annotations

import os
from pathlib import Path

from recfunnel.errors import ArtifactError, ConfigError

MAX_ENTRIES = 10_000  # files and folders an artifact may hold; a funnel has a few dozen


class OutsideRoot(ArtifactError):
    """A reload path outside the artifacts root (answered 403, the same whether it exists or not)."""

    http_status = 403


class NoArtifact(ArtifactError):
    """Nothing at a reload path inside the artifacts root (answered 404)."""

    http_status = 404


class ArtifactsRoot:
    """Resolves reload paths inside ``root`` and refuses everything else alike.

    A path outside the root, a symlink that leads out of it, and a path that does not exist
    outside it all get the same answer, so a client cannot learn what exists elsewhere on the
    disk. A relative path is taken relative to the root.

    Args:
        root: The directory (resolved now, symlinks followed).

    Raises:
        ConfigError: ``root`` is not an existing directory.

    Example:
        >>> import tempfile
        >>> root = ArtifactsRoot(tempfile.mkdtemp())
        >>> root.resolve("/etc")
        Traceback (most recent call last):
        ...
        recfunnel.serving.paths.OutsideRoot: reload path '/etc' is outside the server's artifacts root; only artifacts under it can be loaded (see --artifacts-root).
    """

    def __init__(self, root: str | Path) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise ConfigError(f"artifacts root {str(path)!r} is not a directory; pass --artifacts-root DIR.")
        self.path = path.resolve()

    def resolve(self, requested: str | Path) -> Path:
        """The real path of ``requested`` if it and everything in it stays inside the root.

        Raises:
            OutsideRoot: Outside the root (lexically or through a symlink), or a symlink inside the
                artifact that leads out.
            NoArtifact: Nothing exists at the path.
            ArtifactError: More than ``MAX_ENTRIES`` entries.
        """
        refused = OutsideRoot(f"reload path {str(requested)[:200]!r} is outside the server's artifacts root; only "
                              "artifacts under it can be loaded (see --artifacts-root).")
        try:
            raw = Path(requested)
            lexical = Path(os.path.normpath(raw if raw.is_absolute() else self.path / raw))
        except (TypeError, ValueError):
            raise refused from None
        if not lexical.is_relative_to(self.path):
            raise refused
        missing = NoArtifact(f"no artifact at {str(lexical.relative_to(self.path))[:200]!r} under the artifacts root.")
        try:  # inside the root lexically: what exists there may be told, but not where symlinks lead
            real = lexical.resolve()
            if not real.is_relative_to(self.path):
                raise refused
            if not real.exists():
                raise missing
            self._check_contents(real, refused)
        except ArtifactError:
            raise
        except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a symlink loop
            raise missing from None
        return real

    def _check_contents(self, path: Path, refused: ArtifactError) -> None:
        """No symlink inside the artifact may lead out of the root, and the tree is bounded."""
        if not path.is_dir():
            return
        seen = 0
        for folder, dirs, files in os.walk(path):  # does not follow symlinked folders
            for name in (*dirs, *files):
                seen += 1
                entry = Path(folder, name)
                if entry.is_symlink() and not entry.resolve().is_relative_to(self.path):
                    raise refused
            if seen > MAX_ENTRIES:
                raise ArtifactError(f"reload path {self.show(path)!r} holds more than {MAX_ENTRIES} files; "
                                    "it is not a funnel artifact.")

    def show(self, path: Path) -> str:
        """``path`` as clients see it: relative to the root ("." for the root itself)."""
        try:
            return str(Path(path).resolve().relative_to(self.path))
        except ValueError:
            return Path(path).name

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, Path)) and Path(path).resolve().is_relative_to(self.path)


__all__ = ["ArtifactsRoot", "NoArtifact", "OutsideRoot"]
