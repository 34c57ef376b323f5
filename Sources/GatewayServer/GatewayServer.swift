import Hummingbird
import AsyncHTTPClient
import Prometheus
import Yams
import Routing
