"""Interop checks a one-shot client like the tutorial's cannot make.

Prints one JSON object per line, in the order things happened, for the test
to assert on. Usage: interleave.py HOST:PORT
"""
import json
import queue
import sys

import grpc
from google.protobuf import json_format
import route_guide_pb2
import route_guide_pb2_grpc

# Generous: it only bounds a hang when the server holds replies back.
DEADLINE_SECONDS = 10
INTERLEAVED = ["Alice", "Bob", "Alice"]


def emit(**event):
    print(json.dumps(event), flush=True)


def person_dict(person):
    return json_format.MessageToDict(
        person, preserving_proto_field_name=True, use_integers_for_enums=True
    )


def get_person(stub, name):
    try:
        emit(rpc="GetPerson", name=name, person=person_dict(stub.GetPerson(route_guide_pb2.Name(name=name))))
    except grpc.RpcError as err:
        emit(rpc="GetPerson", name=name, code=err.code().name)


def get_people_interleaved(stub):
    # The request iterator only yields the next name after the reply to the
    # previous one arrived, so this finishes only if the server answers each
    # message while the request stream is still open.
    outbox = queue.Queue()
    replies = stub.GetPeople(iter(outbox.get, None), timeout=DEADLINE_SECONDS)
    for name in INTERLEAVED:
        emit(rpc="GetPeople", sent=name)
        outbox.put(route_guide_pb2.Name(name=name))
        emit(rpc="GetPeople", received=person_dict(next(replies)))
    # An unknown name is skipped: the stream then ends with no further reply.
    emit(rpc="GetPeople", sent="Charlie")
    outbox.put(route_guide_pb2.Name(name="Charlie"))
    outbox.put(None)
    for person in replies:
        emit(rpc="GetPeople", received=person_dict(person))
    emit(rpc="GetPeople", code=replies.code().name)


def main():
    with grpc.insecure_channel(sys.argv[1]) as channel:
        stub = route_guide_pb2_grpc.RouteGuideStub(channel)
        get_person(stub, "Alice")
        get_person(stub, "Nobody")
        get_person(stub, "")
        get_people_interleaved(stub)


if __name__ == "__main__":
    main()
