"""The API's routers, one per resource; ``facelens.service.app`` includes them all."""
