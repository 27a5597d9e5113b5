"""The HTTP API (imported as ``escompte.api``): app factory, routes, auth, errors,
idempotency and pagination. It only wires: domain logic lives in the domain packages."""
