from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id, encode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.webhook import WebhookDeliveryType, WebhookEndpointType
from vouch.attribution import webhooks
from vouch.attribution.webhooks import EndpointInput
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.input(description="A webhook endpoint's settings.")
class WebhookEndpointInput:
    url: str = strawberry.field(description="Where to POST events (https in production).")
    event_types: list[str] = strawberry.field(
        default_factory=list, description="Event types to send; empty means all."
    )
    description: str | None = strawberry.field(default=None, description="What it is for.")
    active: bool = strawberry.field(default=True, description="Send events to it.")

    def to_domain(self) -> EndpointInput:
        return EndpointInput(
            url=self.url,
            event_types=list(self.event_types),
            description=self.description,
            active=self.active,
        )


@strawberry.type(description="Result of createWebhookEndpoint.")
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpointType | None = strawberry.field(description="The new endpoint.")
    secret: str | None = strawberry.field(
        description="The whsec_ signing secret. Shown once: store it now."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing was created.")


@strawberry.type(description="Result of updateWebhookEndpoint.")
class UpdateWebhookEndpointPayload:
    endpoint: WebhookEndpointType | None = strawberry.field(description="The endpoint.")
    secret: str | None = strawberry.field(
        description="The new secret when rotated (shown once); otherwise null."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of deleteWebhookEndpoint.")
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None = strawberry.field(description="The deleted endpoint's id.")
    errors: list[InputError] = strawberry.field(description="Why nothing was deleted.")


@strawberry.type(description="Result of redeliverWebhook.")
class RedeliverWebhookPayload:
    delivery: WebhookDeliveryType | None = strawberry.field(description="The queued delivery.")
    errors: list[InputError] = strawberry.field(description="Why nothing changed.")


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(description="Register a webhook endpoint (admin).")
    @transaction(
        lambda exc: CreateWebhookEndpointPayload(
            endpoint=None, secret=None, errors=user_errors(exc)
        )
    )
    async def create_webhook_endpoint(
        self, info: Info, input: WebhookEndpointInput
    ) -> CreateWebhookEndpointPayload:
        require_scope(info.context, Scope.ADMIN)

        endpoint = await webhooks.create_endpoint(
            info.context.session,
            input.to_domain(),
            production=info.context.settings.is_production,
            allowed_private_hosts=info.context.settings.webhook_allow_private_hosts,
        )
        return CreateWebhookEndpointPayload(
            endpoint=WebhookEndpointType.from_model(endpoint), secret=endpoint.secret, errors=[]
        )

    @strawberry.mutation(description="Change a webhook endpoint, optionally rotating its secret.")
    @transaction(
        lambda exc: UpdateWebhookEndpointPayload(
            endpoint=None, secret=None, errors=user_errors(exc)
        )
    )
    async def update_webhook_endpoint(
        self,
        info: Info,
        id: strawberry.ID,
        input: WebhookEndpointInput,
        rotate_secret: bool = False,
    ) -> UpdateWebhookEndpointPayload:
        require_scope(info.context, Scope.ADMIN)

        endpoint = await webhooks.update_endpoint(
            info.context.session,
            decode_id(id, "WebhookEndpoint"),
            input.to_domain(),
            rotate_secret=rotate_secret,
            production=info.context.settings.is_production,
            allowed_private_hosts=info.context.settings.webhook_allow_private_hosts,
        )
        return UpdateWebhookEndpointPayload(
            endpoint=WebhookEndpointType.from_model(endpoint),
            secret=endpoint.secret if rotate_secret else None,
            errors=[],
        )

    @strawberry.mutation(description="Delete a webhook endpoint and its delivery log (admin).")
    @transaction(lambda exc: DeleteWebhookEndpointPayload(deleted_id=None, errors=user_errors(exc)))
    async def delete_webhook_endpoint(
        self, info: Info, id: strawberry.ID
    ) -> DeleteWebhookEndpointPayload:
        require_scope(info.context, Scope.ADMIN)

        endpoint_id = decode_id(id, "WebhookEndpoint")
        await webhooks.delete_endpoint(info.context.session, endpoint_id)
        deleted = endpoint_id
        return DeleteWebhookEndpointPayload(
            deleted_id=strawberry.ID(encode_id("WebhookEndpoint", deleted)) if deleted else None,
            errors=[],
        )

    @strawberry.mutation(description="Queue a dead or delivered delivery again (admin).")
    @transaction(lambda exc: RedeliverWebhookPayload(delivery=None, errors=user_errors(exc)))
    async def redeliver_webhook(
        self, info: Info, delivery_id: strawberry.ID
    ) -> RedeliverWebhookPayload:
        require_scope(info.context, Scope.ADMIN)

        delivery = await webhooks.redeliver(
            info.context.session,
            decode_id(delivery_id, "WebhookDelivery", field="deliveryId"),
            now=utcnow(),
        )
        return RedeliverWebhookPayload(
            delivery=WebhookDeliveryType.from_model(delivery) if delivery else None,
            errors=[],
        )
