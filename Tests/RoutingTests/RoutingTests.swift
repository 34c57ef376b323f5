import Testing
@testable import Routing
