"""Tell a file's kind from its first bytes (the client may also say it)."""

from __future__ import annotations

import re

from escompte.models import ImportKind

SNIFF_BYTES = 64 * 1024

_FEC_HEADER = re.compile(rb"^(\xef\xbb\xbf)?JournalCode[\t|]JournalLib[\t|]", re.IGNORECASE)
_XML_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s>/]")
_XML_NS = re.compile(rb'xmlns(?::[\w.-]+)?="([^"]+)"')


def _xml_kind(head: bytes) -> ImportKind | None:
    body = re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", head, flags=re.S)
    root = _XML_ROOT.search(body)
    if root is None:
        return None
    name = root.group(1)
    namespaces = b" ".join(_XML_NS.findall(body))
    if name == b"CrossIndustryInvoice":
        return ImportKind.CII
    if name in (b"Invoice", b"CreditNote") and b"oasis" in namespaces:
        return ImportKind.UBL
    if name == b"Document" and b"camt.053" in namespaces:
        return ImportKind.CAMT053
    if name == b"CrossDomainAcknowledgementAndResponse":
        return ImportKind.LIFECYCLE
    if name == b"OFX":
        return ImportKind.OFX
    return None


def detect_kind(head: bytes) -> ImportKind | None:
    """The kind of a file from its first bytes, or None when it cannot be told."""
    head = head[:SNIFF_BYTES]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"%PDF"):
        return ImportKind.FACTURX
    if _FEC_HEADER.match(stripped):
        return ImportKind.FEC
    if stripped.startswith(b"OFXHEADER") or b"<OFX>" in stripped[:4096]:
        return ImportKind.OFX
    if stripped.startswith(b"<"):
        return _xml_kind(stripped)
    if stripped.startswith(b"{") and b'"statuses"' in stripped[:4096]:
        return ImportKind.LIFECYCLE
    first_line = stripped.split(b"\n", 1)[0].lower()
    if b"siren" in first_line and b"etatadministratifunitelegale" in first_line:
        return ImportKind.SIRENE
    if b"familleavis" in first_line or (b"registre" in first_line and b"jugement" in first_line):
        return ImportKind.BODACC
    return None


def not_imported(head: bytes) -> str | None:
    """Why a document Escompte recognises is not one it imports (None: not one of those)."""
    stripped = head[:SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.startswith(b"<"):
        return None
    body = re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", stripped, flags=re.S)
    root = _XML_ROOT.search(body)
    if root is None:
        return None
    name, namespaces = root.group(1), b" ".join(_XML_NS.findall(body))
    if name == b"CrossIndustryDocument" and b"urn:ferd:" in namespaces:
        return (
            "This is a ZUGFeRD 1.0 invoice (the 2014 format). Escompte reads Factur-X and "
            "ZUGFeRD 2.x (UN/CEFACT CII D16B), as a PDF or as XML, and UBL 2.1: ask for the "
            "invoice in one of those."
        )
    if name == b"SCRDMCCBDACIOMessageStructure":
        return "This is an Order-X purchase order, not an invoice: import the invoice."
    if name == b"Document" and (b"camt.054" in namespaces or b"camt.052" in namespaces):
        kind = (
            "camt.054 debit/credit notification" if b"camt.054" in namespaces else "camt.052 intraday report"
        )
        return (
            f"This is a {kind}, not an end-of-day statement: import the account's camt.053 "
            "statement, which books every entry once."
        )
    return None
