import Testing
@testable import KVPaging
