"""Kubernetes' Container Runtime Interface, runtime.v1, as protobuf messages.

api.proto is k8s.io/cri-api v0.37.2's pkg/apis/runtime/v1/api.proto (Apache-2.0, The Kubernetes Authors),
unchanged; api_pb2.py/.pyi are generated from it with grpcio-tools 1.85.1 (libprotoc 35.1):
    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. api.proto
Only the messages are used (sensor/cri.py makes the two unary calls itself), so no _grpc stubs are generated.
"""
