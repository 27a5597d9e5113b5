"""Safe XML parsing for every connector, and element paths for error messages.

Files come from outside: an XML file must not be able to make Escompte read local files
or URLs (external entities), nor expand a few bytes into gigabytes (entity expansion,
"billion laughs"). No format Escompte reads needs a DTD, so any DOCTYPE declaration is
refused outright, before and after parsing (the check after parsing also covers
encodings a byte scan cannot see, e.g. UTF-16). The parser never resolves entities,
never loads a DTD, never touches the network and keeps libxml2's size limits on; the
input is bounded in size before parsing.
"""

from __future__ import annotations

from typing import IO, Any

from lxml import etree  # type: ignore[import-untyped]

MAX_XML_BYTES = 20 * 1024 * 1024  # e-invoices with embedded attachments stay far below

_DOCTYPE_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")


class XmlError(Exception):
    """The file is not XML Escompte accepts; ``message`` says why, ``line`` where if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _parser() -> Any:
    # A new parser per call: lxml parsers keep state and are not shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def read_bounded(stream: IO[bytes], max_bytes: int, *, what: str = "file") -> bytes:
    """The whole stream, or XmlError when it is larger than ``max_bytes``."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise XmlError(f"The {what} is larger than {max_bytes // (1024 * 1024)} MiB: Escompte refuses it.")
    return data


def parse_xml(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> Any:
    """Parse ``data`` and return its root element; XmlError with a message otherwise."""
    if len(data) > max_bytes:
        raise XmlError(f"The XML is larger than {max_bytes // (1024 * 1024)} MiB: Escompte refuses it.")
    if not data.strip():
        raise XmlError("The file is empty.")
    if any(marker in data for marker in _DOCTYPE_MARKERS):
        raise _doctype_refused()
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        raise XmlError(f"The file is not well-formed XML: {exc.msg}.", line=line) from None
    except ValueError as exc:  # e.g. an encoding declaration lxml cannot honour
        raise XmlError(f"The file is not readable XML: {exc}.") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _doctype_refused()
    return root


def _doctype_refused() -> XmlError:
    return XmlError(
        "The XML contains a DOCTYPE or ENTITY declaration. Escompte refuses them: no e-invoicing "
        "format needs one, and they are how XML bombs (entity expansion) and external "
        "entities (reading local files or URLs) work. Export the file again without a DOCTYPE."
    )


def local_name(element: Any) -> str:
    return str(etree.QName(element).localname)


def _step(element: Any) -> str:
    qname = etree.QName(element)
    name = f"{element.prefix}:{qname.localname}" if element.prefix else qname.localname
    parent = element.getparent()
    if parent is not None:
        same = [sibling for sibling in parent if sibling.tag == element.tag]
        if len(same) > 1:
            name += f"[{same.index(element) + 1}]"
    return str(name)


def element_path(element: Any) -> str:
    """``/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID``: the element's place in
    the file, with the file's own prefixes and a position among same-named siblings."""
    steps = []
    node = element
    while node is not None:
        steps.append(_step(node))
        node = node.getparent()
    return "/" + "/".join(reversed(steps))


def child_path(element: Any, relative: str) -> str:
    """The path of something missing below ``element`` (``relative`` as written in XPath)."""
    return element_path(element) + "/" + relative
