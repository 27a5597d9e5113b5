from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, EmailStr, Field
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from stdnum import luhn
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fr import siren as std_siren
from stdnum.fr import siret as std_siret

from escompte.schemas import InputModel, Resource, ref, text


def _siren(value: str) -> str:
    try:
        return str(std_siren.validate(value))
    except StdnumError:
        raise ValueError("not a valid SIREN: 9 digits with a valid Luhn check digit") from None


def _siret(value: str) -> str:
    try:
        return str(std_siret.validate(value))
    except StdnumError:
        raise ValueError("not a valid SIRET: 14 digits with a valid Luhn check digit") from None


def _iban(value: str) -> str:
    try:
        return str(IBAN(value).compact)
    except (SchwiftyException, ValueError) as exc:
        raise ValueError(f"not a valid IBAN ({exc})") from None


def _bic(value: str) -> str:
    try:
        return str(BIC(value).compact)
    except (SchwiftyException, ValueError) as exc:
        raise ValueError(f"not a valid BIC ({exc})") from None


def _vat(value: str) -> str:
    try:
        return str(eu_vat.validate(value))
    except StdnumError:
        raise ValueError("not a valid EU VAT number (e.g. FR40303265045)") from None


Siren = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{9}$",
        description="SIREN: 9 digits, Luhn check digit.",
        examples=["732829320"],
        json_schema_extra={"format": "fr-siren"},
    ),
    AfterValidator(_siren),
]
Siret = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{14}$",
        description="SIRET: 14 digits, Luhn check digit.",
        examples=["73282932000074"],
        json_schema_extra={"format": "fr-siret"},
    ),
    AfterValidator(_siret),
]
Iban = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}[0-9A-Za-z ]{2,40}$",
        examples=["FR1420041010050500013M02606"],
        description="IBAN (ISO 13616, mod-97 checked); spaces allowed.",
        json_schema_extra={"format": "iban"},
    ),
    AfterValidator(_iban),
]
Bic = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$",
        examples=["BNPAFRPP"],
        description="BIC (ISO 9362).",
        json_schema_extra={"format": "bic"},
    ),
    AfterValidator(_bic),
]
VatNumber = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}[0-9A-Za-z+*. ]{2,16}$",
        examples=["FR40303265045"],
        description="EU VAT number, checked; a French one must end with the SIREN.",
        json_schema_extra={"format": "eu-vat"},
    ),
    AfterValidator(_vat),
]
Email = Annotated[EmailStr, Field(max_length=254)]


class Address(BaseModel):
    line1: text(200)  # type: ignore[valid-type]
    line2: text(200) | None = None  # type: ignore[valid-type]
    postal_code: Annotated[str, Field(pattern=r"^[0-9A-Z -]{3,10}$")]
    city: text(100)  # type: ignore[valid-type]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")] = "FR"


class CompanyCreate(InputModel):
    legal_name: text(200)  # type: ignore[valid-type]
    siren: Siren
    siret: Siret | None = Field(default=None, description="SIRET of the head office.")
    vat_number: VatNumber | None = None
    iban: Iban | None = Field(default=None, description="Account advances are paid to.")
    bic: Bic | None = None
    contact_email: Email
    address: Address | None = None
    partner: ref("prt", "Admins only: the partner this SME belongs to.") | None = None  # type: ignore[valid-type]


class AddressOut(BaseModel):
    line1: str
    line2: str | None
    postal_code: str
    city: str
    country: str


class CompanyOut(Resource):
    object: Literal["company"] = "company"
    legal_name: str
    siren: str
    siret: str | None
    vat_number: str | None
    iban: str | None
    bic: str | None
    contact_email: str
    address: AddressOut | None
    partner: str | None


class DebtorCreate(InputModel):
    company: ref("cmp", "The seller; defaults to the caller's company for company keys.") | None = None  # type: ignore[valid-type]
    siren: Siren
    legal_name: text(200)  # type: ignore[valid-type]
    vat_number: VatNumber | None = None
    contact_email: Email | None = None
    payment_terms_days: int = Field(
        default=30,
        ge=0,
        le=365,
        description="Days from issue to due date when an invoice carries no due date.",
    )


class DebtorOut(Resource):
    object: Literal["debtor"] = "debtor"
    company: str
    siren: str | None = Field(description="Null while the debtor is only known from the books.")
    aux_account_num: str | None = Field(description="Its auxiliary account in the seller's books (FEC).")
    legal_name: str
    vat_number: str | None
    contact_email: str | None
    payment_terms_days: int


def valid_siren(rng_digits: str) -> str:
    """Complete 8 digits into a valid SIREN (demo and tests)."""
    return rng_digits + luhn.calc_check_digit(rng_digits)


def company_out(c: Any) -> CompanyOut:
    address = None
    if c.address_line1:
        address = AddressOut(
            line1=c.address_line1,
            line2=c.address_line2,
            postal_code=c.postal_code,
            city=c.city,
            country=c.country,
        )
    return CompanyOut(
        id=c.id,
        created_at=c.created_at,
        legal_name=c.legal_name,
        siren=c.siren,
        siret=c.siret,
        vat_number=c.vat_number,
        iban=c.iban,
        bic=c.bic,
        contact_email=c.contact_email,
        address=address,
        partner=c.partner_id,
    )


def debtor_out(d: Any) -> DebtorOut:
    return DebtorOut(
        id=d.id,
        created_at=d.created_at,
        company=d.company_id,
        siren=d.siren,
        aux_account_num=d.aux_account_num,
        legal_name=d.legal_name,
        vat_number=d.vat_number,
        contact_email=d.contact_email,
        payment_terms_days=d.payment_terms_days,
    )
