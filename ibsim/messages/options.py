"""Option messages: securityDefinitionOptionParameter and its end (the chain), tickOptionComputation
(model and quote greeks), and the reqSecDefOptParams decoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ibsim.framing import FieldReader
from ibsim.messages.ids import (
    SECURITY_DEFINITION_OPTION_PARAMETER,
    SECURITY_DEFINITION_OPTION_PARAMETER_END,
    TICK_OPTION_COMPUTATION,
)
from ibsim.messages.layout import Fields
from ibsim.model import Greeks

#: tickOptionComputation's tick types: bid, ask, last, model (live; delayed: +70)
BID_OPTION, ASK_OPTION, LAST_OPTION, MODEL_OPTION = 10, 11, 12, 13
DELAYED_OFFSET = 70


@dataclass(frozen=True)
class SecDefOptParamsRequest:
    """reqSecDefOptParams 78 (no version field)."""

    req_id: int
    underlying_symbol: str
    fut_fop_exchange: str
    underlying_sec_type: str
    underlying_con_id: int


def parse_sec_def_opt_params(fields: Sequence[str]) -> SecDefOptParamsRequest:
    """reqSecDefOptParams 78: reqId, underlyingSymbol, futFopExchange, underlyingSecType, underlyingConId."""
    r = FieldReader(fields, 1)
    return SecDefOptParamsRequest(r.int(), r.str(), r.str(), r.str(), r.int())


def security_definition_option_parameter(
    req_id: int,
    exchange: str,
    underlying_con_id: int,
    trading_class: str,
    multiplier: str,
    expirations: Sequence[str],
    strikes: Sequence[float],
) -> Fields:
    """securityDefinitionOptionParameter 75 (no version field): one exchange's expiries and strikes."""
    fields: Fields = [SECURITY_DEFINITION_OPTION_PARAMETER, int(req_id), exchange, int(underlying_con_id)]
    fields += [trading_class, multiplier, len(expirations), *expirations]
    return fields + [len(strikes), *(float(s) for s in strikes)]


def security_definition_option_parameter_end(req_id: int) -> Fields:
    """securityDefinitionOptionParameterEnd 76."""
    return [SECURITY_DEFINITION_OPTION_PARAMETER_END, int(req_id)]


def tick_option_computation(req_id: int, tick_type: int, greeks: Greeks) -> Fields:
    """tickOptionComputation 21 at version 157 (no version field; tickAttrib 0: return-based);
    figures not computed go as IB's unset markers (-1 for volatility, -2 for the greeks)."""
    head: Fields = [TICK_OPTION_COMPUTATION, int(req_id), int(tick_type), 0]
    if greeks.implied_vol is None:
        return head + [-1.0, -2.0, float(greeks.opt_price), -1.0, -2.0, -2.0, -2.0, float(greeks.und_price)]
    figures = (
        greeks.implied_vol,
        greeks.delta,
        greeks.opt_price,
        0.0,
        greeks.gamma,
        greeks.vega,
        greeks.theta,
    )
    return head + [round(float(f), 8) for f in figures] + [float(greeks.und_price)]
