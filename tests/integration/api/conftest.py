"""A real API server over HTTP against this test's database, and tenants with tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.apiserver import ApiProcess, start_api
from tests.support.tenants import Tenant, make_tenant


@pytest.fixture
def api(db_url, tmp_path) -> Iterator[ApiProcess]:
    """Configured as `eve up` configures it: with a key for what is encrypted at rest."""
    from cryptography.fernet import Fernet

    server = start_api(db_url, tmp_path, env={"EVE_SECRETS_KEY": Fernet.generate_key().decode()})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@dataclass
class Client:
    tenant: Tenant
    http: httpx.Client
    token: str


def client_for(api: ApiProcess, tenant: Tenant) -> Client:
    r = httpx.post(f"{api.url}/auth/token", json={"apiKey": tenant.api_key})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(tenant=tenant, http=http, token=token)


@pytest.fixture
async def alice(api, conn) -> Client:
    return client_for(api, await make_tenant(conn, "alice-org"))


@pytest.fixture
async def bob(api, conn) -> Client:
    return client_for(api, await make_tenant(conn, "bob-org"))
