import sys

import grpc
from concurrent import futures
import person_pb2
import route_guide_pb2_grpc


class RouteGuideServicer(route_guide_pb2_grpc.RouteGuideServicer):
    def __init__(self):
        self.people = {
            "Alice": person_pb2.Person(
                name="Alice",
                age=30,
                gender=person_pb2.Person.FEMALE,
                hobbies=["reading", "swimming"],
                address=person_pb2.Person.Address(
                    street="123 Main St", city="New York"
                ),
            ),
            "Bob": person_pb2.Person(
                name="Bob",
                age=25,
                gender=person_pb2.Person.MALE,
                hobbies=["gaming", "cycling"],
                address=person_pb2.Person.Address(
                    street="456 Elm St", city="Los Angeles"
                ),
            ),
        }

    def GetPerson(self, request, context):
        name = request.name
        return self.people.get(name, person_pb2.Person(name="Not Found"))

    def GetPeople(self, request_iterator, context):
        for name_request in request_iterator:
            person = self.people.get(name_request.name)
            if person:
                yield person

# Changed from the tutorial: the port comes from argv (0 picks a free one) and
# the server binds loopback only; the line is printed once it is serving, with
# the bound port, so a test can wait for it.
def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    route_guide_pb2_grpc.add_RouteGuideServicer_to_server(RouteGuideServicer(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if bound == 0:  # grpcio 1.51 reports a failed bind as port 0 instead of raising
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    server.start()
    print(f"Server started on port {bound}", flush=True)
    server.wait_for_termination()

if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 50051)
