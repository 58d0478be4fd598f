"""The canonical data model, declared once as data.

Importers map CRM exports onto these tables, ``data.validate`` checks frames against them,
the docs are generated from them and tests derive good and bad rows from them. Storage
conventions: ids are strings (leading zeros kept), timestamps are tz-aware UTC, amounts
are floats in the order's currency, list columns hold lists of strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from data.stages import STAGE_CODES
from leadscore.errors import ConfigError

ColumnKind = Literal["id", "text", "category", "timestamp", "float", "int", "bool", "list"]

ACTIVITY_TYPES: tuple[str, ...] = ("call", "wechat", "email", "visit", "demo", "quote", "form", "other")
DIRECTIONS: tuple[str, ...] = ("inbound", "outbound")
TIERS: tuple[str, ...] = ("senior", "regular", "newcomer")
DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Column:
    """One column of a canonical table.

    ``allowed`` closes a category to a fixed set; ``aliases`` are header spellings seen in
    Chinese and English CRM exports that map onto this column.
    """

    name: str
    kind: ColumnKind
    required: bool
    description: str
    description_zh: str
    allowed: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    min_value: float | None = None


@dataclass(frozen=True)
class Table:
    """A canonical table: its columns, primary key and event-time column."""

    name: str
    key: tuple[str, ...]
    time_column: str | None
    columns: tuple[Column, ...]
    description: str
    allows_custom_attributes: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.required)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name!r} has no column {name!r}; columns: {self.column_names}")


LEADS = Table(
    name="leads",
    key=("lead_id",),
    time_column="created_at",
    description="One row per sales lead, as captured.",
    allows_custom_attributes=True,
    columns=(
        Column(
            "lead_id",
            "id",
            True,
            "Lead id from the CRM.",
            "线索在 CRM 中的编号。",
            aliases=("线索ID", "线索编号", "线索id", "Lead ID", "LeadId", "lead id", "Prospect ID"),
        ),
        Column(
            "created_at",
            "timestamp",
            True,
            "When the lead was captured.",
            "线索创建时间。",
            aliases=("创建时间", "录入时间", "线索创建时间", "Created At", "Created", "created time"),
        ),
        Column(
            "channel",
            "category",
            False,
            "Acquisition channel (Baidu SEM, WeCom, referral ...).",
            "来源渠道。",
            aliases=("来源渠道", "渠道", "线索来源", "来源", "Channel", "Source", "Lead Source"),
        ),
        Column(
            "campaign",
            "category",
            False,
            "Marketing campaign.",
            "推广计划/活动。",
            aliases=("推广计划", "活动", "营销活动", "Campaign"),
        ),
        Column(
            "keyword",
            "category",
            False,
            "Search keyword that brought the lead.",
            "搜索关键词。",
            aliases=("关键词", "搜索词", "Keyword"),
        ),
        Column(
            "region",
            "category",
            False,
            "Sales region of the lead.",
            "所属区域。",
            aliases=("区域", "地区", "省份", "所属区域", "Region"),
        ),
        Column(
            "industry",
            "category",
            False,
            "Industry of the lead's company.",
            "所属行业。",
            aliases=("行业", "所属行业", "Industry"),
        ),
        Column(
            "company_size",
            "category",
            False,
            "Company size band (headcount).",
            "公司规模（人数）。",
            aliases=("公司规模", "企业规模", "人员规模", "Company Size"),
        ),
        Column(
            "declared_budget",
            "float",
            False,
            "Budget the lead stated, in CNY.",
            "客户声明的预算（元）。",
            aliases=("预算", "预算金额", "客户预算", "Budget", "Declared Budget"),
            min_value=0.0,
        ),
        Column(
            "customer_id",
            "id",
            False,
            "Customer id when the lead comes from an existing customer.",
            "老客户的客户编号。",
            aliases=("客户ID", "客户编号", "客户id", "Customer ID"),
        ),
        Column(
            "owner_rep_id",
            "id",
            False,
            "Rep who owns the lead in the CRM.",
            "负责人（销售）编号。",
            aliases=("负责人", "负责人ID", "销售", "跟进人", "归属销售", "Owner", "Owner ID"),
        ),
        Column(
            "company_name",
            "text",
            False,
            "Company name (personal data: never logged).",
            "客户名称（个人信息，不写入日志）。",
            aliases=("客户名称", "公司名称", "企业名称", "Company", "Company Name"),
        ),
    ),
)

ACTIVITIES = Table(
    name="activities",
    key=("activity_id",),
    time_column="occurred_at",
    description="Contacts between reps and leads: calls, WeChat messages, visits, demos, quotes, forms.",
    columns=(
        Column(
            "activity_id",
            "id",
            True,
            "Activity id.",
            "跟进记录编号。",
            aliases=("跟进ID", "活动ID", "记录ID", "Activity ID"),
        ),
        Column(
            "lead_id",
            "id",
            True,
            "Lead the activity belongs to.",
            "关联线索编号。",
            aliases=("线索ID", "线索编号", "Lead ID"),
        ),
        Column(
            "rep_id",
            "id",
            False,
            "Rep who performed or received the activity.",
            "跟进销售编号。",
            aliases=("跟进人", "销售", "负责人", "Rep ID", "Rep"),
        ),
        Column(
            "occurred_at",
            "timestamp",
            True,
            "When it happened.",
            "发生时间。",
            aliases=("跟进时间", "发生时间", "时间", "Occurred At", "Time"),
        ),
        Column(
            "type",
            "category",
            True,
            "Activity type.",
            "跟进方式。",
            allowed=ACTIVITY_TYPES,
            aliases=("跟进方式", "类型", "活动类型", "Type", "Activity Type"),
        ),
        Column(
            "direction",
            "category",
            True,
            "inbound (lead reached out) or outbound (rep reached out).",
            "方向：inbound（客户主动）或 outbound（销售主动）。",
            allowed=DIRECTIONS,
            aliases=("方向", "Direction"),
        ),
        Column(
            "outcome",
            "text",
            False,
            "Free-text or coded outcome.",
            "跟进结果。",
            aliases=("跟进结果", "结果", "Outcome"),
        ),
    ),
)

STAGE_CHANGES = Table(
    name="stage_changes",
    key=("lead_id", "stage", "changed_at"),
    time_column="changed_at",
    description="Each time a lead entered a funnel stage (or was lost).",
    columns=(
        Column("lead_id", "id", True, "Lead id.", "线索编号。", aliases=("线索ID", "线索编号", "Lead ID")),
        Column(
            "stage",
            "category",
            True,
            "Stage entered (Chinese or English names accepted on input).",
            "进入的阶段（中英文名称均可）。",
            allowed=STAGE_CODES,
            aliases=("阶段", "销售阶段", "商机阶段", "Stage"),
        ),
        Column(
            "changed_at",
            "timestamp",
            True,
            "When the lead entered the stage.",
            "进入阶段的时间。",
            aliases=("变更时间", "阶段变更时间", "时间", "Changed At"),
        ),
    ),
)

ORDERS = Table(
    name="orders",
    key=("order_id",),
    time_column="ordered_at",
    description="Order lines per customer; refunds are negative amounts.",
    columns=(
        Column(
            "order_id",
            "id",
            True,
            "Order id.",
            "订单编号。",
            aliases=("订单ID", "订单编号", "订单号", "Order ID"),
        ),
        Column(
            "customer_id",
            "id",
            True,
            "Customer id.",
            "客户编号。",
            aliases=("客户ID", "客户编号", "Customer ID"),
        ),
        Column(
            "ordered_at",
            "timestamp",
            True,
            "Order or refund time.",
            "下单/退款时间。",
            aliases=("下单时间", "订单时间", "日期", "Ordered At", "Order Date"),
        ),
        Column(
            "amount",
            "float",
            True,
            "Amount; refunds are negative.",
            "金额；退款为负数。",
            aliases=("金额", "订单金额", "实付金额", "Amount"),
        ),
        Column(
            "currency",
            "category",
            False,
            "ISO 4217 currency code (default CNY).",
            "币种（默认 CNY）。",
            aliases=("币种", "货币", "Currency"),
        ),
    ),
)

REPS = Table(
    name="reps",
    key=("rep_id",),
    time_column=None,
    description="The sales team roster.",
    columns=(
        Column(
            "rep_id", "id", True, "Rep id.", "销售编号。", aliases=("销售ID", "员工编号", "工号", "Rep ID")
        ),
        Column(
            "name",
            "text",
            True,
            "Rep name (personal data: never logged).",
            "姓名（个人信息，不写入日志）。",
            aliases=("姓名", "销售姓名", "Name"),
        ),
        Column(
            "tier",
            "category",
            True,
            "senior, regular or newcomer.",
            "级别：senior/regular/newcomer。",
            allowed=TIERS,
            aliases=("级别", "职级", "Tier"),
        ),
        Column(
            "capacity",
            "int",
            True,
            "Max open leads at once.",
            "同时跟进线索上限。",
            aliases=("容量", "最大线索数", "Capacity"),
            min_value=0,
        ),
        Column(
            "regions", "list", False, "Regions served.", "负责区域。", aliases=("负责区域", "区域", "Regions")
        ),
        Column(
            "skills",
            "list",
            False,
            "Industries or products the rep knows.",
            "擅长行业/产品。",
            aliases=("擅长行业", "技能", "Skills"),
        ),
        Column(
            "hired_at",
            "timestamp",
            False,
            "Hire date.",
            "入职时间。",
            aliases=("入职时间", "入职日期", "Hired At"),
        ),
        Column(
            "active",
            "bool",
            True,
            "Whether the rep takes new leads.",
            "是否在岗接单。",
            aliases=("在岗", "是否在职", "Active"),
        ),
        Column(
            "manager_id",
            "id",
            False,
            "Rep id of the manager to escalate to.",
            "上级经理编号。",
            aliases=("上级", "经理", "Manager ID"),
        ),
    ),
)

TABLES: dict[str, Table] = {table.name: table for table in (LEADS, ACTIVITIES, STAGE_CHANGES, ORDERS, REPS)}
TABLE_NAMES: tuple[str, ...] = tuple(TABLES)


def get_table(name: str) -> Table:
    """Return the table definition for ``name`` or raise listing the valid names."""
    try:
        return TABLES[name]
    except KeyError:
        raise ConfigError(f"unknown table {name!r}; expected one of {', '.join(TABLE_NAMES)}") from None
