"""A FastAPI app with its Lambda entry point, Mangum, serving under /fastapi."""

from fastapi import FastAPI, HTTPException
from mangum import Mangum
from pydantic import BaseModel

api = FastAPI(title="lambda-compat")

ITEMS = {1: {"id": 1, "name": "Tea", "price": 4.5}}


class Item(BaseModel):
    name: str
    price: float


@api.get("/items/{item_id}")
def read_item(item_id: int):
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail=f"item {item_id} not found")
    return ITEMS[item_id]


@api.post("/items", status_code=201)
def create_item(item: Item):
    return {"name": item.name, "price": item.price}


handler = Mangum(api, lifespan="off", api_gateway_base_path="/fastapi")
