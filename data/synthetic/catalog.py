"""Default categories of the synthetic history: a Chinese SME selling business software.

The seller, 云帆软件, sells a CRM and ERP suite to small and mid-sized companies across
China. Category values are the Chinese names a CRM export from such a seller would contain.
The numbers are plausible effect sizes chosen for the story, not estimates from real data.
"""

from __future__ import annotations

import datetime as dt

from data.synthetic.specs import (
    CampaignSpec,
    ChannelSpec,
    IndustrySpec,
    KeywordSpec,
    RegionSpec,
    SizeSpec,
    TierSpec,
    TitleSpec,
)

BAIDU_SEM = "百度SEM"
DOUYIN = "抖音"


def default_channels() -> dict[str, ChannelSpec]:
    """Return the seven acquisition channels with their campaigns and keywords."""
    return {
        BAIDU_SEM: ChannelSpec(
            weight=0.28,
            drift_weight=0.18,
            quality=0.0,
            budget_declared=0.45,
            existing_customer=0.03,
            never_contacted=0.04,
            intake_activity="form",
            intake_has_rep=False,
            campaigns=_baidu_campaigns(),
        ),
        "企业微信": ChannelSpec(
            weight=0.14,
            drift_weight=0.14,
            quality=0.35,
            budget_declared=0.5,
            existing_customer=0.2,
            never_contacted=0.02,
            intake_activity="wechat",
            intake_has_rep=True,
            campaigns={"私域社群": CampaignSpec(weight=0.6), "公众号菜单": CampaignSpec(weight=0.4)},
            campaign_missing=0.5,
        ),
        "钉钉": ChannelSpec(
            weight=0.07,
            drift_weight=0.06,
            quality=0.15,
            budget_declared=0.45,
            existing_customer=0.15,
            never_contacted=0.03,
            intake_activity="other",
            intake_has_rep=False,
        ),
        "官网表单": ChannelSpec(
            weight=0.16,
            drift_weight=0.14,
            quality=0.1,
            budget_declared=0.55,
            existing_customer=0.06,
            never_contacted=0.04,
            intake_activity="form",
            intake_has_rep=False,
            campaigns={
                "官网-免费试用": CampaignSpec(weight=0.45, quality=0.0),
                "官网-预约演示": CampaignSpec(weight=0.3, quality=0.45),
                "官网-白皮书下载": CampaignSpec(weight=0.25, quality=-0.35),
            },
        ),
        "展会": ChannelSpec(
            weight=0.1,
            drift_weight=0.08,
            quality=0.3,
            size_tilt=0.5,
            budget_declared=0.7,
            existing_customer=0.08,
            never_contacted=0.03,
            intake_activity="visit",
            intake_has_rep=True,
            campaigns={
                "展会-上海": CampaignSpec(weight=0.35),
                "展会-深圳": CampaignSpec(weight=0.3),
                "展会-北京": CampaignSpec(weight=0.2),
                "展会-成都": CampaignSpec(weight=0.15),
            },
            campaign_missing=0.05,
        ),
        "转介绍": ChannelSpec(
            weight=0.1,
            drift_weight=0.1,
            quality=0.8,
            size_tilt=0.2,
            budget_declared=0.6,
            existing_customer=0.05,
            never_contacted=0.01,
            intake_activity="call",
            intake_has_rep=True,
        ),
        DOUYIN: ChannelSpec(
            weight=0.15,
            drift_weight=0.3,
            quality=-0.6,
            size_tilt=-0.5,
            budget_declared=0.3,
            existing_customer=0.01,
            never_contacted=0.08,
            intake_activity="form",
            intake_has_rep=False,
            campaigns={
                "抖音信息流-短视频": CampaignSpec(weight=0.7, quality=-0.1),
                "抖音直播间": CampaignSpec(weight=0.3, quality=0.1),
            },
        ),
    }


def _baidu_campaigns() -> dict[str, CampaignSpec]:
    def keywords(entries: dict[str, tuple[float, float]]) -> dict[str, KeywordSpec]:
        return {
            word: KeywordSpec(weight=weight, quality=quality) for word, (weight, quality) in entries.items()
        }

    return {
        "品牌词": CampaignSpec(
            weight=0.15,
            quality=0.3,
            keywords=keywords({"云帆CRM": (0.5, 0.1), "云帆CRM价格": (0.3, 0.4), "云帆软件官网": (0.2, 0.2)}),
        ),
        "产品词": CampaignSpec(
            weight=0.35,
            keywords=keywords(
                {
                    "CRM系统": (0.3, 0.0),
                    "客户管理系统": (0.25, 0.0),
                    "销售管理软件": (0.2, 0.05),
                    "CRM系统价格": (0.15, 0.4),
                    "CRM免费版": (0.1, -0.4),
                }
            ),
        ),
        "行业词": CampaignSpec(
            weight=0.2,
            quality=0.1,
            keywords=keywords(
                {
                    "制造业ERP": (0.35, 0.2),
                    "餐饮管理系统": (0.2, -0.1),
                    "教培机构管理系统": (0.2, -0.05),
                    "物流管理软件": (0.25, 0.1),
                }
            ),
        ),
        "竞品词": CampaignSpec(
            weight=0.15,
            keywords=keywords({"CRM哪个好": (0.5, 0.15), "CRM软件排名": (0.3, 0.1), "CRM对比": (0.2, 0.2)}),
        ),
        "通用词": CampaignSpec(
            weight=0.15,
            quality=-0.2,
            keywords=keywords(
                {"客户管理": (0.4, -0.1), "销售技巧": (0.35, -0.5), "怎么管理客户": (0.25, -0.4)}
            ),
        ),
    }


def default_regions() -> dict[str, RegionSpec]:
    """Return the seven sales regions of China."""
    return {
        "华东": RegionSpec(
            weight=0.34,
            quality=0.1,
            cities=("上海", "杭州", "苏州", "南京", "宁波", "合肥", "济南", "青岛"),
            neighbours=("华中", "华北"),
        ),
        "华南": RegionSpec(
            weight=0.22,
            quality=0.1,
            cities=("广州", "深圳", "东莞", "佛山", "厦门", "福州"),
            neighbours=("华中", "西南"),
        ),
        "华北": RegionSpec(
            weight=0.14,
            quality=0.0,
            cities=("北京", "天津", "石家庄", "太原"),
            neighbours=("东北", "华东"),
        ),
        "华中": RegionSpec(
            weight=0.1, quality=0.0, cities=("武汉", "长沙", "郑州", "南昌"), neighbours=("华东", "华南")
        ),
        "西南": RegionSpec(
            weight=0.1, quality=-0.05, cities=("成都", "重庆", "昆明", "贵阳"), neighbours=("华南", "西北")
        ),
        "东北": RegionSpec(
            weight=0.05, quality=-0.2, cities=("沈阳", "大连", "长春", "哈尔滨"), neighbours=("华北",)
        ),
        "西北": RegionSpec(
            weight=0.05, quality=-0.2, cities=("西安", "兰州", "银川", "乌鲁木齐"), neighbours=("西南",)
        ),
    }


def default_industries() -> dict[str, IndustrySpec]:
    """Return the industries of the leads' companies."""
    return {
        "制造业": IndustrySpec(weight=0.22, quality=0.2, order_value=1.3, repeat_rate=1.0, name_word="机械"),
        "零售": IndustrySpec(weight=0.14, quality=-0.1, order_value=0.8, repeat_rate=1.3, name_word="商业"),
        "教育培训": IndustrySpec(
            weight=0.12, quality=-0.2, order_value=0.7, repeat_rate=0.8, name_word="教育科技"
        ),
        "医疗": IndustrySpec(
            weight=0.08, quality=0.1, order_value=1.4, repeat_rate=0.9, name_word="医疗器械"
        ),
        "软件/IT": IndustrySpec(
            weight=0.12, quality=0.15, order_value=1.1, repeat_rate=1.1, name_word="信息技术"
        ),
        "物流": IndustrySpec(weight=0.08, quality=0.05, order_value=1.0, repeat_rate=1.0, name_word="物流"),
        "餐饮": IndustrySpec(
            weight=0.1, quality=-0.3, order_value=0.5, repeat_rate=1.2, name_word="餐饮管理"
        ),
        "建筑工程": IndustrySpec(
            weight=0.06, quality=0.0, order_value=1.5, repeat_rate=0.7, name_word="建设工程"
        ),
        "商贸": IndustrySpec(weight=0.08, quality=-0.05, order_value=0.8, repeat_rate=1.1, name_word="贸易"),
    }


def default_sizes() -> dict[str, SizeSpec]:
    """Return the company-size bands, smallest first."""
    return {
        "1-20": SizeSpec(weight=0.4, quality=-0.3, value=-1.5, budget_median=8_000.0, dwell_factor=0.8),
        "21-100": SizeSpec(weight=0.33, quality=0.0, value=-0.5, budget_median=30_000.0, dwell_factor=1.0),
        "101-500": SizeSpec(weight=0.19, quality=0.35, value=0.7, budget_median=100_000.0, dwell_factor=1.4),
        "500+": SizeSpec(weight=0.08, quality=0.5, value=1.8, budget_median=300_000.0, dwell_factor=1.9),
    }


def default_titles() -> dict[str, TitleSpec]:
    """Return the contact's job titles (a custom lead attribute known at intake)."""
    return {
        "老板/总经理": TitleSpec(weight=0.25, quality=0.4),
        "部门负责人": TitleSpec(weight=0.2, quality=0.25),
        "采购": TitleSpec(weight=0.15, quality=0.1),
        "IT负责人": TitleSpec(weight=0.12, quality=0.1),
        "普通员工": TitleSpec(weight=0.28, quality=-0.3),
    }


def default_tiers() -> dict[str, TierSpec]:
    """Return the three rep tiers.

    Senior reps convert high-value leads clearly better. On small, nurture leads every tier
    does about as well, so routing big leads to seniors pays, and routing small ones to
    newcomers costs little.
    """
    return {
        "senior": TierSpec(
            share=0.2,
            capacity=50,
            hired_months_before_end=(48.0, 120.0),
            low_value_effect=0.05,
            high_value_effect=0.65,
            response_median_hours=3.0,
            slow_response_rate=0.12,
            routing_weight_low=0.15,
            routing_weight_high=0.45,
        ),
        "regular": TierSpec(
            share=0.5,
            capacity=60,
            hired_months_before_end=(12.0, 48.0),
            low_value_effect=0.03,
            high_value_effect=0.25,
            response_median_hours=2.0,
            slow_response_rate=0.09,
            routing_weight_low=0.5,
            routing_weight_high=0.45,
        ),
        "newcomer": TierSpec(
            share=0.3,
            capacity=30,
            hired_months_before_end=(1.0, 12.0),
            low_value_effect=0.0,
            high_value_effect=-0.35,
            response_median_hours=1.5,
            slow_response_rate=0.07,
            routing_weight_low=0.35,
            routing_weight_high=0.1,
        ),
    }


# Spring Festival (春节) dates. Lead intake drops from the eve through the sixth day.
SPRING_FESTIVAL: tuple[dt.date, ...] = (
    dt.date(2015, 2, 19),
    dt.date(2016, 2, 8),
    dt.date(2017, 1, 28),
    dt.date(2018, 2, 16),
    dt.date(2019, 2, 5),
    dt.date(2020, 1, 25),
    dt.date(2021, 2, 12),
    dt.date(2022, 2, 1),
    dt.date(2023, 1, 22),
    dt.date(2024, 2, 10),
    dt.date(2025, 1, 29),
    dt.date(2026, 2, 17),
    dt.date(2027, 2, 6),
    dt.date(2028, 1, 26),
    dt.date(2029, 2, 13),
    dt.date(2030, 2, 3),
)

# Hourly shape of lead intake in China Standard Time: a morning peak, a lunch dip, an
# afternoon peak and an evening tail from mobile channels.
HOUR_WEIGHTS: tuple[float, ...] = (
    0.05, 0.03, 0.02, 0.02, 0.02, 0.04, 0.1, 0.3,
    0.7, 1.0, 1.1, 1.05, 0.6, 0.75, 1.0, 1.05,
    1.0, 0.9, 0.7, 0.55, 0.5, 0.45, 0.3, 0.12,
)  # fmt: skip

# Monday first. Many Chinese SMEs work on Saturday, so Saturday keeps half the intake.
WEEKDAY_WEIGHTS: tuple[float, ...] = (1.0, 1.05, 1.05, 1.0, 0.95, 0.5, 0.3)

SURNAMES: tuple[str, ...] = (
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周",
    "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗", "高",
)  # fmt: skip
GIVEN_NAMES: tuple[str, ...] = (
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军",
    "杰", "娟", "涛", "明", "超", "秀英", "海燕", "建华", "志强", "晓东",
    "丽华", "俊杰", "雪梅", "鹏飞", "文博", "思远", "佳怡", "子涵", "浩然", "欣怡",
)  # fmt: skip
BRAND_WORDS: tuple[str, ...] = (
    "恒达", "鑫源", "华信", "联创", "博远", "瑞丰", "金泰", "宏图", "正和", "德胜",
    "天成", "永兴", "盛世", "卓越", "新元", "东方", "中科", "远航", "嘉禾", "汇通",
)  # fmt: skip
GENERIC_NAME_WORD = "实业"
COMPANY_SUFFIX = "有限公司"
