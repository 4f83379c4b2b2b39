"""Settings of the billing service (env prefix BILLING_)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from amiflow_runtime.config import Environment, ServiceSettings, settings_config
from amiflow_schemas.primitives import CurrencyCode
from pydantic import Field, SecretStr, field_validator, model_validator

# The providers whose callbacks billing verifies; cash and counter payments come through POST /v1/payments.
CALLBACK_PROVIDERS = frozenset({"wechat_pay", "alipay", "bank"})


class BillingSettings(ServiceSettings):
    """Prepaid billing; platform-wide settings come from ServiceSettings."""

    # An invalid setting's error message must not echo the secrets it was given.
    model_config = settings_config("BILLING_") | {"hide_input_in_errors": True}
    service_name: ClassVar[str] = "billing"
    default_api_port: ClassVar[int] = 8003

    # The currency accounts are kept in (BILLING_CURRENCY); tenants that differ in
    # BILLING_TENANT_CURRENCIES as a JSON object {"tenant": "HKD"}.
    currency: CurrencyCode = "CNY"
    tenant_currencies: dict[str, CurrencyCode] = {}
    # The name printed at the head of a tenant's e-bills, as a JSON object {"tenant": "Riverside Water"};
    # the tenant id when none is given.
    tenant_names: dict[str, str] = {}
    # HMAC secrets of the payment providers' callbacks, as a JSON object {"wechat_pay": "…"}. A provider
    # without a secret has its callbacks refused: nothing unverified is ever credited.
    payment_provider_secrets: dict[str, SecretStr] = {}
    # Faust table state and the app id (also the worker's consumer group), as in VEE.
    faust_store: str = "memory://"
    faust_app_id: str = "amiflow-billing"
    # How often the settlement job looks for closed local days, and how long after a day ends it waits
    # for postings still in flight across midnight.
    settlement_interval_s: float = 60.0
    settlement_delay_s: float = 600.0
    # Accounts settled at once, each in its own transaction (PostgreSQL; SQLite has one writer, so 1).
    settlement_concurrency: int = Field(4, ge=1, le=64)
    # The sandbox checkout (payment orders confirmed by POST /v1/payment-sandbox/{order}/confirm, no money
    # taken): on by default in development and test, refused in production, where it would credit money
    # nobody paid. Unset: on outside production.
    payment_sandbox: bool | None = None
    # The most one payment order may ask for (a customer's top-up on the phone).
    payment_order_max_amount: Decimal = Field(Decimal("5000.00"), gt=0)

    @field_validator("payment_order_max_amount")
    @classmethod
    def _whole_cents(cls, value: Decimal) -> Decimal:
        if value != value.quantize(Decimal("0.01")):
            raise ValueError(f"payment_order_max_amount {value} has more than 2 decimal places")
        return value

    @model_validator(mode="after")
    def _no_sandbox_in_production(self) -> BillingSettings:
        if self.payment_sandbox and self.environment is Environment.PRODUCTION:
            raise ValueError("BILLING_PAYMENT_SANDBOX=true is refused in production: the sandbox checkout credits "
                             "payment orders without taking any money; unset it or set it to false")
        return self

    @property
    def sandbox_checkout(self) -> bool:
        """True when payment orders are paid through the sandbox checkout (never in production)."""
        if self.payment_sandbox is None:
            return self.environment is not Environment.PRODUCTION
        return self.payment_sandbox

    @model_validator(mode="after")
    def _known_providers(self) -> BillingSettings:
        unknown = sorted(set(self.payment_provider_secrets) - CALLBACK_PROVIDERS)
        if unknown:
            raise ValueError(f"payment provider secrets for unknown providers: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(CALLBACK_PROVIDERS))})")
        return self

    def currency_of(self, tenant_id: str) -> str:
        """The currency a tenant's accounts, tariffs and payments are in."""
        return self.tenant_currencies.get(tenant_id, self.currency)

    def tenant_name(self, tenant_id: str) -> str:
        """The tenant's name as its e-bills print it."""
        return self.tenant_names.get(tenant_id, tenant_id)

    def provider_secret(self, provider: str) -> bytes | None:
        """The callback secret of a payment provider; None when it has none (its callbacks are refused)."""
        secret = self.payment_provider_secrets.get(provider)
        if secret is None or not secret.get_secret_value():
            return None
        return secret.get_secret_value().encode()

    def _secrets(self) -> dict[str, str]:
        # The providers' secrets are refused as placeholders outside development and test, like the rest.
        found = super()._secrets()
        for provider, secret in self.payment_provider_secrets.items():
            found[f"payment_provider_secrets[{provider}]"] = secret.get_secret_value()
        return found
