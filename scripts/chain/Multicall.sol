// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Multicall — only `tryAggregate`, ABI-compatible with Multicall3's function of that name.
/// @notice Installed on the local test chain at Multicall3's canonical address, because the x402
/// facilitator calls it there when it explains why a settlement would fail.
contract Multicall {
    struct Call {
        address target;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    /// @dev Payable like Multicall3's, so the selector and mutability match what callers expect.
    function tryAggregate(bool requireSuccess, Call[] calldata calls) external payable returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool success, bytes memory data) = calls[i].target.call(calls[i].callData);
            require(success || !requireSuccess, "Multicall: call failed");
            returnData[i] = Result(success, data);
        }
    }
}
