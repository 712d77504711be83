"""The reliability campaign: scenarios that push a real server and real agents on loopback
(load, a stream flood, agents and the server killed -9, malformed input, tokens), each bounded in
time and traffic, each judging its own figures. `python -m benchmarks.reliability --help`."""
