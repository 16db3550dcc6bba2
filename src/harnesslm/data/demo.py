"""A deterministic synthetic home-improvement shop: catalog, graded judgments and unlabeled queries.

Used by ``harness demo`` and by the test suite, so everything runs without the real data. The frames mirror
the Home Depot relevance data set (``products.csv``: product_uid, product_title; ``dev.csv``: search_term,
product_uid, relevance averaged over raters on 1..3), so the same loaders read both.

The shop is built to be *hard for an off-the-shelf sentence encoder but learnable*:

* shop jargon that never appears in a title ("romex" for NM-B wire, "weed eater" for string trimmers) is
  mapped consistently to one product type, so fine-tuning on training queries generalises to held-out ones;
* product lines are near-duplicates that differ in one attribute (gauge, size, finish), so the attribute
  words of a query decide between an exact match (3.0) and a substitute (2.33);
* hard negatives share words or the brand with the query but are the wrong type.

All randomness comes from ``random.Random`` streams seeded from ``seed``; the same arguments always give
byte-identical frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from random import Random

import pandas as pd

from harnesslm.atomic import atomic_file

__all__ = ["DemoShop", "make_demo_shop", "write_demo_shop"]

# --- grades (Home Depot scale: 1 irrelevant .. 3 exact, averaged over raters) -----------------------------

EXACT = 3.0
SUBSTITUTE_BRAND = 2.67  # right type and attributes, another brand
SUBSTITUTE = 2.33  # right type, one attribute differs
LOOSE_SUBSTITUTE = 2.0  # right type, several attributes differ
COMPLEMENT = 1.67  # related type bought together (wire nuts for wire)
IRRELEVANT = 1.0
_FIRST_UID = 200001

# --- vocabulary ---------------------------------------------------------------------------------------

_BRANDS: dict[str, tuple[str, ...]] = {
    "electrical": ("Voltra", "Amperon", "Cordex", "Wirewell", "Hexford"),
    "plumbing": ("Flowmark", "AquaLine", "Pipewright", "Brassco", "Hydrona"),
    "paint": ("Truhue", "Coverall", "Sheenmark", "Pigmenta", "Brushcraft"),
    "tools": ("Kestrel", "Torqmax", "Hardline", "Ridgeback", "Hexford"),
    "lighting": ("Lumacore", "Brightline", "Glowell", "Voltra", "Halvera"),
    "flooring": ("Oakhaven", "Floorcraft", "Stonebridge", "Tilery"),
    "garden": ("Greenfield", "Verdana", "Yardly", "Kestrel", "Torqmax"),
    "hardware": ("Brassco", "Hexford", "Fastmark", "Anchorpoint", "Halvera"),
    "appliances": ("Frostline", "Kelvani", "Cuisora", "Heathmark"),
    "building": ("Stonebridge", "Fastmark", "Hardline", "Gypsona", "Tallwood"),
}

_DEVICE_COLORS = ("White", "Ivory", "Light Almond", "Black", "Gray")
_METAL_FINISHES = (
    "Satin Nickel",
    "Matte Black",
    "Oil-Rubbed Bronze",
    "Polished Chrome",
    "Brushed Gold",
    "Stainless Steel",
)
_APPLIANCE_FINISHES = (
    "Fingerprint Resistant Stainless Steel",
    "Stainless Steel",
    "Black Stainless Steel",
    "White",
    "Black",
)
_PIPE_SIZES = ("1/2 in.", "3/4 in.", "1 in.", "1-1/4 in.", "1-1/2 in.", "2 in.", "3 in.")
_SHEENS = ("Flat", "Matte", "Eggshell", "Satin", "Semi-Gloss", "High-Gloss")
_PAINT_COLORS = ("Ultra Pure White", "Swiss Coffee", "Agreeable Gray", "Naval Blue", "Sage Green", "Greige")
_PAINT_VOLUMES = ("1 qt.", "1 gal.", "5 gal.")
_COLOR_TEMPS = ("Soft White 2700K", "Bright White 3000K", "Cool White 4000K", "Daylight 5000K")
_TOOL_VOLTS = ("12V", "18V", "20V MAX")
_GARDEN_VOLTS = ("20V", "40V", "56V", "80V")
_WOOD_LOOKS = ("Natural Oak", "Gray Oak", "Hickory Brown", "Coastal Walnut", "White Ash", "Barnwood")
_SMALL_PACKS = ("1-Pack", "3-Pack", "10-Pack")

# Slots that are printed in titles but never typed into a search box.
_HIDDEN_SLOTS = frozenset({"battery", "case"})


@dataclass(frozen=True)
class _ProductType:
    """One kind of product: how its titles look and how shoppers ask for it."""

    key: str
    category: str
    noun: str  # fixed title phrase naming the type; always present verbatim in its titles
    template: str  # str.format template over {brand}, {noun} and the slot names
    short: tuple[str, ...]  # everyday query phrases whose words appear in the titles
    slots: tuple[tuple[str, tuple[str, ...]], ...]
    jargon: tuple[str, ...] = ()  # shop jargon for this type that never appears in any title
    complements: tuple[str, ...] = ()
    weight: float = 1.0  # relative share of the catalog


def _pt(
    key: str,
    category: str,
    noun: str,
    template: str,
    short: tuple[str, ...],
    jargon: tuple[str, ...] = (),
    complements: tuple[str, ...] = (),
    weight: float = 1.0,
    **slots: tuple[str, ...],
) -> _ProductType:
    slot_table = tuple(slots.items())
    return _ProductType(key, category, noun, template, short, slot_table, jargon, complements, weight)


# fmt: off
_PRODUCT_TYPES: tuple[_ProductType, ...] = (
    # electrical
    _pt("nm_wire", "electrical", "Solid Copper NM-B Indoor Wire",
        "{brand} {length} {gauge} {noun} in {color}",
        ("nm-b wire", "indoor wire", "copper wire", "electrical wire"), ("romex",),
        ("wire_connector", "thhn_wire", "old_work_box", "electrical_tape"), 1.5,
        length=("25 ft.", "50 ft.", "100 ft.", "250 ft."), gauge=("14/2", "12/2", "14/3", "12/3", "10/2"),
        color=("White", "Yellow", "Orange")),
    _pt("thhn_wire", "electrical", "Stranded Copper THHN Wire", "{brand} {length} {awg} {color} {noun}",
        ("thhn wire", "stranded wire"), (), ("wire_connector",),
        length=("50 ft.", "100 ft.", "500 ft."), awg=("14 AWG", "12 AWG", "10 AWG"),
        color=("Black", "Red", "White", "Green", "Blue")),
    _pt("wire_connector", "electrical", "Twist-On Wire Connectors", "{brand} {color} {noun} ({pack})",
        ("twist-on wire connectors", "wire connectors"), ("wire nuts",), ("electrical_tape",),
        color=("Yellow", "Red", "Orange", "Blue", "Gray", "Assorted Color"),
        pack=("25-Pack", "50-Pack", "100-Pack", "500-Pack")),
    _pt("receptacle", "electrical", "Tamper-Resistant Duplex Receptacle",
        "{brand} {amp} 125-Volt {noun} in {color} ({pack})",
        ("duplex receptacle", "tamper resistant receptacle", "receptacle"),
        ("wall outlet", "electrical outlet"),
        ("wall_plate", "old_work_box", "gfci"), 1.3,
        amp=("15 Amp", "20 Amp"), color=_DEVICE_COLORS, pack=_SMALL_PACKS),
    _pt("gfci", "electrical", "Self-Test GFCI Duplex Receptacle",
        "{brand} {amp} {noun} with Wall Plate, {color}",
        ("gfci receptacle", "gfci"), ("gfi",), ("wall_plate",),
        amp=("15 Amp", "20 Amp"), color=_DEVICE_COLORS),
    _pt("toggle_switch", "electrical", "Single-Pole Toggle Switch",
        "{brand} {amp} 120-Volt {noun}, {color} ({pack})",
        ("toggle switch", "single pole switch"), ("light switch",), ("wall_plate", "dimmer", "old_work_box"),
        amp=("15 Amp", "20 Amp"), color=_DEVICE_COLORS, pack=_SMALL_PACKS),
    _pt("dimmer", "electrical", "Single-Pole/3-Way LED Slide Dimmer", "{brand} {watts} {noun} in {color}",
        ("slide dimmer", "led dimmer", "dimmer switch"), (), ("led_bulb", "wall_plate"),
        watts=("150-Watt", "250-Watt", "600-Watt"), color=_DEVICE_COLORS),
    _pt("wall_plate", "electrical", "Standard Size Wall Plate", "{brand} {gang} {style} {noun} in {color}",
        ("wall plate", "cover plate"), ("switch plate", "outlet cover"), (),
        gang=("1-Gang", "2-Gang", "3-Gang"), style=("Decorator/Rocker", "Toggle", "Duplex Outlet"),
        color=_DEVICE_COLORS),
    _pt("old_work_box", "electrical", "PVC Old Work Electrical Box", "{brand} {gang} {volume} {noun}",
        ("old work box", "electrical box"), ("remodel box",), (),
        gang=("1-Gang", "2-Gang", "3-Gang"),
        volume=("14 cu. in.", "18 cu. in.", "20.3 cu. in.", "25 cu. in.")),
    _pt("extension_cord", "electrical", "Indoor/Outdoor Extension Cord",
        "{brand} {length} {gauge} {noun}, {color}",
        ("extension cord", "outdoor extension cord"), (), (), 1.2,
        length=("6 ft.", "25 ft.", "50 ft.", "100 ft."), gauge=("16/3", "14/3", "12/3"),
        color=("Orange", "Green", "Yellow", "Black", "Blue")),
    _pt("surge_protector", "electrical", "Surge Protector with USB Ports",
        "{brand} {outlets} {noun}, {joules}, {color}",
        ("surge protector",), ("power strip",), ("extension_cord",),
        outlets=("6-Outlet", "8-Outlet", "12-Outlet"), joules=("1080 Joules", "2160 Joules", "3600 Joules"),
        color=("White", "Black")),
    _pt("electrical_tape", "electrical", "Vinyl Electrical Tape",
        "{brand} 3/4 in. x {length} {color} {noun} ({pack})",
        ("electrical tape", "vinyl tape"), (), (),
        length=("20 ft.", "60 ft.", "66 ft."), color=("Black", "Red", "White", "Green", "Blue"),
        pack=("1-Pack", "5-Pack", "10-Pack")),
    _pt("cable_tie", "electrical", "UV Resistant Nylon Cable Ties",
        "{brand} {length} {strength} {color} {noun} ({pack})",
        ("cable ties", "nylon ties"), ("zip ties",), (),
        length=("4 in.", "8 in.", "11 in.", "14 in."), strength=("18 lb.", "50 lb.", "120 lb."),
        color=("Black", "Natural"), pack=("100-Pack", "200-Pack", "500-Pack")),
    # plumbing
    _pt("pvc_elbow", "plumbing", "PVC Schedule 40 Elbow Fitting",
        "{brand} {size} {angle} {ends} {noun} in {color}",
        ("pvc elbow", "pvc fitting", "elbow fitting"), (), ("pvc_pipe", "pvc_coupling", "pvc_cement"), 1.3,
        size=_PIPE_SIZES, angle=("90-Degree", "45-Degree"), ends=("S x S", "FPT x S", "Hub x Hub"),
        color=("White", "Gray")),
    _pt("pvc_coupling", "plumbing", "PVC Schedule 40 Coupling", "{brand} {size} {ends} {noun}",
        ("pvc coupling", "pvc coupler"), (), ("pvc_pipe", "pvc_cement"),
        size=_PIPE_SIZES, ends=("S x S", "FPT x FPT", "S x FPT")),
    _pt("pvc_pipe", "plumbing", "PVC Schedule 40 Plain-End Pipe", "{brand} {size} x {length} {noun}",
        ("pvc pipe",), (), ("pvc_cement",),
        size=_PIPE_SIZES, length=("2 ft.", "5 ft.", "10 ft.")),
    _pt("pvc_cement", "plumbing", "PVC Cement", "{brand} {volume} {body} {noun}",
        ("pvc cement", "pvc solvent cement"), ("pvc glue",), (),
        volume=("4 oz.", "8 oz.", "16 oz.", "32 oz."),
        body=("Clear Medium-Body", "Gray Heavy-Duty", "Blue Fast-Set")),
    _pt("push_fitting", "plumbing", "Push-to-Connect Brass", "{brand} {size} {noun} {shape}",
        ("push to connect fitting", "push fitting", "brass fitting"), ("sharkbite",), ("pex_pipe",),
        size=("1/2 in.", "3/4 in.", "1 in."),
        shape=("90-Degree Elbow", "Coupling", "Tee", "End Stop", "Ball Valve")),
    _pt("pex_pipe", "plumbing", "PEX-B Pipe", "{brand} {size} x {length} {color} {noun}",
        ("pex pipe", "pex tubing"), (), (),
        size=("1/2 in.", "3/4 in.", "1 in."), length=("10 ft.", "20 ft.", "100 ft.", "300 ft."),
        color=("Red", "Blue", "White")),
    _pt("thread_tape", "plumbing", "PTFE Thread Seal Tape", "{brand} {width} x {length} {noun} ({pack})",
        ("thread seal tape", "ptfe tape"), ("plumbers tape", "teflon tape"), ("pvc_elbow", "push_fitting"),
        width=("1/2 in.", "3/4 in."), length=("260 in.", "520 in."), pack=_SMALL_PACKS),
    _pt("drain_trap", "plumbing", "Tubular Sink Drain Trap",
        "{brand} {size} {material} {noun} with Slip Joint",
        ("drain trap", "sink trap"), ("p trap",), ("bath_faucet", "kitchen_faucet"),
        size=("1-1/4 in.", "1-1/2 in."), material=("PVC", "Chrome-Plated Brass", "ABS", "Polypropylene")),
    _pt("kitchen_faucet", "plumbing", "Single-Handle Pull-Down Sprayer Kitchen Faucet",
        "{brand} {style} {noun} in {finish}",
        ("kitchen faucet", "pull down faucet", "kitchen sink faucet"), (), ("supply_line", "disposer"), 1.3,
        style=("Arc", "High-Arc", "Commercial-Style", "Modern"), finish=_METAL_FINISHES),
    _pt("bath_faucet", "plumbing", "2-Handle Bathroom Faucet", "{brand} {spread} {noun} in {finish}",
        ("bathroom faucet", "bathroom sink faucet"), ("lav faucet", "vanity faucet"), ("supply_line",),
        spread=("4 in. Centerset", "8 in. Widespread", "Mini Widespread"), finish=_METAL_FINISHES),
    _pt("toilet", "plumbing", "Two-Piece Toilet", "{brand} {flush} {shape} {noun} in {color}",
        ("toilet", "two piece toilet"), ("commode",), ("wax_ring", "supply_line"),
        flush=("1.28 GPF", "1.6 GPF", "1.1/1.6 GPF Dual Flush"),
        shape=("Elongated", "Round", "Elongated Comfort Height"), color=("White", "Biscuit", "Bone")),
    _pt("wax_ring", "plumbing", "Toilet Bowl Wax Gasket", "{brand} {ring} {noun} with {extra} ({pack})",
        ("toilet wax gasket", "toilet gasket"), ("wax ring",), (),
        ring=("Standard", "Extra-Thick", "Reinforced"), extra=("Flange", "Brass Bolts", "Plastic Horn"),
        pack=("1-Pack", "2-Pack", "6-Pack")),
    _pt("disposer", "plumbing", "Continuous Feed Food Waste Disposer", "{brand} {hp} {noun}, {motor}",
        ("food waste disposer", "waste disposer"), ("garbage disposal",), (),
        hp=("1/3 HP", "1/2 HP", "3/4 HP", "1 HP"), motor=("Permanent Magnet Motor", "Induction Motor")),
    _pt("water_heater", "plumbing", "Tank Water Heater", "{brand} {volume} {fuel} {noun} with {warranty}",
        ("water heater", "tank water heater"), ("hot water tank",), (),
        volume=("30 Gal.", "40 Gal.", "50 Gal.", "75 Gal."),
        fuel=("Natural Gas", "Electric", "Liquid Propane"),
        warranty=("6-Year Warranty", "9-Year Warranty", "12-Year Warranty")),
    _pt("supply_line", "plumbing", "Braided Stainless Steel Supply Line", "{brand} {ends} x {length} {noun}",
        ("supply line", "braided supply line", "faucet supply line"), (), (),
        ends=("3/8 in. Compression x 1/2 in. FIP", "3/8 in. Compression x 7/8 in. Ballcock"),
        length=("12 in.", "16 in.", "20 in.", "30 in.")),
    # paint
    _pt("interior_paint", "paint", "Interior Paint and Primer", "{brand} {volume} {color} {sheen} {noun}",
        ("interior paint", "wall paint", "paint and primer"), (), ("primer", "paint_brush", "roller_cover"),
        1.6,
        volume=_PAINT_VOLUMES, color=_PAINT_COLORS, sheen=_SHEENS),
    _pt("exterior_paint", "paint", "Exterior Paint & Primer", "{brand} {volume} {color} {sheen} {noun}",
        ("exterior paint", "outdoor paint"), ("house paint",), ("paint_brush", "roller_cover"), 1.3,
        volume=_PAINT_VOLUMES, color=_PAINT_COLORS, sheen=_SHEENS),
    _pt("spray_paint", "paint", "General Purpose Spray Paint",
        "{brand} 12 oz. {finish} {color} {noun} ({pack})",
        ("spray paint",), ("rattle can",), (),
        finish=("Gloss", "Flat", "Satin", "Hammered", "Metallic"),
        color=("Black", "White", "Red", "Silver", "Navy Blue", "Gold"), pack=("1-Pack", "6-Pack")),
    _pt("primer", "paint", "Water-Based Stain-Blocking Primer", "{brand} {volume} White {surface} {noun}",
        ("primer", "stain blocking primer"), ("kilz",), (),
        volume=_PAINT_VOLUMES, surface=("Interior", "Interior/Exterior", "Exterior")),
    _pt("wood_stain", "paint", "Semi-Transparent Exterior Wood Stain", "{brand} {volume} {color} {noun}",
        ("wood stain", "exterior stain"), ("deck stain", "fence stain"), ("paint_brush",),
        volume=_PAINT_VOLUMES,
        color=("Cedar", "Redwood", "Chestnut Brown", "Slate Gray", "Natural Tone", "Cordovan Brown")),
    _pt("paint_brush", "paint", "Nylon & Polyester Paint Brush", "{brand} {size} {shape} {noun}",
        ("paint brush", "angle brush"), ("cutting in brush",), ("painters_tape",),
        size=("1 in.", "1-1/2 in.", "2 in.", "2-1/2 in.", "3 in.", "4 in."),
        shape=("Angle Sash", "Flat", "Thin Angle", "Short Handle Angle")),
    _pt("roller_cover", "paint", "High-Density Woven Roller Cover", "{brand} {width} x {nap} {noun} ({pack})",
        ("roller cover", "paint roller"), ("roller sleeve",), ("painters_tape", "tarp"),
        width=("4 in.", "9 in.", "18 in."), nap=("1/4 in.", "3/8 in.", "1/2 in.", "3/4 in."),
        pack=("1-Pack", "3-Pack", "6-Pack")),
    _pt("painters_tape", "paint", "Multi-Surface Painter's Tape", "{brand} {width} x 60 yds. {noun} ({pack})",
        ("painters tape", "painter's tape"), ("blue tape", "frog tape"), ("tarp",),
        width=("0.94 in.", "1.41 in.", "1.88 in.", "2.83 in."), pack=("1-Pack", "3-Pack", "6-Pack")),
    _pt("tarp", "paint", "Multi-Purpose Tarp", "{brand} {size} {material} {noun}",
        ("tarp", "canvas tarp"), ("drop cloth",), (),
        size=("4 ft. x 15 ft.", "6 ft. x 9 ft.", "9 ft. x 12 ft.", "12 ft. x 15 ft."),
        material=("Canvas", "Poly", "Butyl-Backed Canvas")),
    _pt("caulk", "paint", "Siliconized Acrylic Latex Kitchen & Bath Caulk", "{brand} {volume} {color} {noun}",
        ("caulk", "latex caulk", "bathroom caulk"), (), ("caulk_gun",),
        volume=("5.5 oz.", "10.1 oz."), color=("White", "Clear", "Almond", "Gray", "Black")),
    _pt("caulk_gun", "paint", "Dripless Caulking Gun", "{brand} {ratio} {frame} {noun}",
        ("caulking gun", "caulk gun"), (), (),
        ratio=("10:1 Thrust Ratio", "18:1 Thrust Ratio", "26:1 Thrust Ratio"),
        frame=("Steel Frame", "Smooth Rod", "Skeleton")),
    _pt("joint_compound", "paint", "Pre-Mixed Joint Compound", "{brand} {volume} {kind} {noun}",
        ("joint compound",), ("drywall mud",), ("drywall",),
        volume=("1 qt.", "1 gal.", "3.5 gal.", "4.5 gal."),
        kind=("All-Purpose", "Lightweight", "Dust Control")),
    _pt("spackle", "paint", "Interior Wall Patching Compound", "{brand} {volume} {kind} {noun}",
        ("patching compound", "wall patch"), ("spackle", "spackling"), ("joint_compound",),
        volume=("8 oz.", "16 oz.", "32 oz."), kind=("Lightweight", "Fast-Drying", "Color-Changing")),
    # tools
    _pt("drill", "tools", "Cordless Drill/Driver Kit",
        "{brand} {volts} Lithium-Ion {chuck} {noun} with {battery}",
        ("cordless drill", "drill driver", "power drill"), (), ("drill_bits", "impact_driver"), 1.3,
        volts=_TOOL_VOLTS, chuck=("3/8 in.", "1/2 in."),
        battery=("(1) 2.0Ah Battery and Charger", "(2) 2.0Ah Batteries and Charger",
        "4.0Ah Battery and Bag")),
    _pt("impact_driver", "tools", "Brushless Cordless 1/4 in. Impact Driver",
        "{brand} {volts} {noun} ({kit})",
        ("impact driver",), (), ("drill_bits",),
        volts=_TOOL_VOLTS, kit=("Tool-Only", "Kit with Battery")),
    _pt("circular_saw", "tools", "Circular Saw", "{brand} {power} {blade} {noun} with Blade",
        ("circular saw",), ("skil saw", "skilsaw"), (),
        power=("15 Amp Corded", "20V MAX Cordless", "18V Brushless Cordless"),
        blade=("7-1/4 in.", "6-1/2 in.")),
    _pt("recip_saw", "tools", "Variable Speed Reciprocating Saw", "{brand} {power} {noun} ({kit})",
        ("reciprocating saw",), ("sawzall",), (),
        power=("12 Amp Corded", "20V MAX Cordless", "18V Brushless Cordless"),
        kit=("Tool-Only", "Kit with Case")),
    _pt("wet_dry_vac", "tools", "Wet/Dry Vacuum", "{brand} {volume} {hp} Peak HP Portable {noun}",
        ("wet dry vacuum", "wet dry vac"), ("shop vac",), (),
        volume=("4 Gal.", "6 Gal.", "9 Gal.", "12 Gal.", "16 Gal."), hp=("3.5", "5.0", "6.5")),
    _pt("hammer", "tools", "Claw Hammer", "{brand} {mass} {handle} Handle {curve} {noun}",
        ("claw hammer", "hammer"), (), (),
        mass=("16 oz.", "20 oz.", "22 oz."), handle=("Fiberglass", "Steel", "Hickory"),
        curve=("Curved", "Rip")),
    _pt("tape_measure", "tools", "Tape Measure", "{brand} {length} x {width} {feature} {noun}",
        ("tape measure",), ("measuring tape",), (),
        length=("16 ft.", "25 ft.", "30 ft.", "35 ft."), width=("1 in.", "1-1/4 in."),
        feature=("Magnetic", "Auto-Lock", "Compact", "Standard")),
    _pt("utility_knife", "tools", "Retractable Utility Knife", "{brand} {style} {noun} with {blades}",
        ("utility knife",), ("box cutter",), (),
        style=("Quick-Change", "Folding", "Auto-Retract"), blades=("5 Blades", "10 Blades", "Blade Storage")),
    _pt("socket_set", "tools", "SAE & Metric Mechanics Tool Set", "{brand} {drive} Drive {noun} ({pieces})",
        ("mechanics tool set", "socket set"), ("ratchet set",), (),
        drive=("1/4 in. and 3/8 in.", "1/4 in., 3/8 in. and 1/2 in."),
        pieces=("65-Piece", "123-Piece", "230-Piece", "450-Piece")),
    _pt("drill_bits", "tools", "Titanium Drill Bit Set", "{brand} {pieces} {noun} for Wood & Metal",
        ("drill bit set", "drill bits"), (), (),
        pieces=("13-Piece", "21-Piece", "29-Piece", "100-Piece")),
    _pt("step_ladder", "tools", "Step Ladder",
        "{brand} {height} {material} {noun} with {capacity} Load Capacity",
        ("step ladder", "ladder"), (), (),
        height=("4 ft.", "6 ft.", "8 ft.", "10 ft."), material=("Fiberglass", "Aluminum"),
        capacity=("225 lb.", "250 lb.", "300 lb.")),
    # lighting
    _pt("led_bulb", "lighting", "A19 Dimmable LED Light Bulb", "{brand} {watts} {noun} in {temp} ({pack})",
        ("led bulb", "led light bulb", "a19 bulb"), (), ("dimmer",), 1.6,
        watts=("40-Watt Equivalent", "60-Watt Equivalent", "75-Watt Equivalent", "100-Watt Equivalent"),
        temp=_COLOR_TEMPS, pack=("2-Pack", "4-Pack", "8-Pack", "16-Pack")),
    _pt("br30_bulb", "lighting", "BR30 Dimmable LED Flood Light Bulb",
        "{brand} {watts} {noun} in {temp} ({pack})",
        ("br30 bulb", "br30 led"), (), ("recessed_light",),
        watts=("65-Watt Equivalent", "85-Watt Equivalent"), temp=_COLOR_TEMPS,
        pack=("2-Pack", "6-Pack", "12-Pack")),
    _pt("recessed_light", "lighting", "Integrated LED Recessed Light Kit",
        "{brand} {size} Ultra-Thin {noun}, {temp} ({pack})",
        ("recessed light", "led recessed light"), ("can lights", "pot lights"), (), 1.2,
        size=("4 in.", "6 in."), temp=_COLOR_TEMPS, pack=("1-Pack", "4-Pack", "6-Pack", "12-Pack")),
    _pt("ceiling_fan", "lighting", "Indoor LED Ceiling Fan with Light Kit and Remote",
        "{brand} {size} {noun} in {finish}",
        ("ceiling fan",), (), (),
        size=("44 in.", "52 in.", "60 in.", "72 in."), finish=_METAL_FINISHES),
    _pt("flush_mount", "lighting", "Flush Mount Ceiling Light",
        "{brand} {size} {lights} {finish} {noun} with {shade}",
        ("flush mount light", "ceiling light"), ("dome light",), ("led_bulb",),
        size=("11 in.", "13 in.", "16 in."), lights=("1-Light", "2-Light", "3-Light"), finish=_METAL_FINISHES,
        shade=("Frosted Glass Shade", "White Acrylic Shade", "Seeded Glass Shade")),
    _pt("pendant", "lighting", "Mini Pendant Light", "{brand} 1-Light {finish} {noun} with {shade}",
        ("pendant light", "mini pendant"), ("hanging light",), ("led_bulb",),
        finish=_METAL_FINISHES,
        shade=("Clear Glass Shade", "Seeded Glass Shade", "Metal Shade", "Opal Glass Shade")),
    _pt("shop_light", "lighting", "Linkable LED Utility Light", "{brand} {length} {lumens} {noun}, {temp}",
        ("led utility light", "linkable led light"), ("shop light", "garage light"), (),
        length=("2 ft.", "4 ft.", "8 ft."),
        lumens=("2200 Lumens", "4000 Lumens", "5000 Lumens", "9000 Lumens"),
        temp=_COLOR_TEMPS),
    _pt("flood_light", "lighting", "Motion-Sensing LED Security Flood Light",
        "{brand} {lumens} {heads} Outdoor {noun} in {color}",
        ("flood light", "security light", "motion sensor light"), (), (),
        lumens=("1800 Lumens", "2500 Lumens", "3500 Lumens"),
        heads=("Single-Head", "Dual-Head", "Triple-Head"),
        color=("White", "Bronze", "Black")),
    _pt("string_lights", "lighting", "Outdoor LED Edison Bulb String Light",
        "{brand} {length} {bulbs} {noun}",
        ("string lights", "outdoor string lights"), ("patio lights", "cafe lights"), (),
        length=("24 ft.", "48 ft.", "96 ft."), bulbs=("12-Bulb", "24-Bulb", "48-Bulb")),
    # flooring
    _pt("lvp", "flooring", "Waterproof Luxury Vinyl Plank Flooring",
        "{brand} {look} {wear} {size} {noun} ({case})",
        ("vinyl plank flooring", "luxury vinyl plank"), ("lvp",), ("underlayment",), 1.3,
        look=_WOOD_LOOKS, wear=("12 MIL", "20 MIL"), size=("7.1 in. x 48 in.", "9 in. x 60 in."),
        case=("23.77 sq. ft./case", "20.8 sq. ft./case", "18.9 sq. ft./case")),
    _pt("laminate", "flooring", "Laminate Wood Flooring",
        "{brand} {look} {thick} Thick x {size} {noun} ({case})",
        ("laminate flooring", "laminate floor"), (), ("underlayment",),
        look=_WOOD_LOOKS, thick=("8 mm", "10 mm", "12 mm"), size=("7.6 in. x 47.6 in.", "6.1 in. x 50.6 in."),
        case=("19.63 sq. ft./case", "21.3 sq. ft./case")),
    _pt("ceramic_tile", "flooring", "Glazed Ceramic Floor and Wall Tile",
        "{brand} {color} {size} {noun} ({case})",
        ("ceramic tile", "floor tile", "wall tile"), (), ("grout", "thinset"), 1.2,
        color=("Bright White", "Arctic Gray", "Beige", "Charcoal", "Calacatta"),
        size=("3 in. x 6 in.", "4 in. x 12 in.", "12 in. x 12 in.", "12 in. x 24 in."),
        case=("10 sq. ft./case", "15.5 sq. ft./case")),
    _pt("carpet_tile", "flooring", "Peel and Stick Carpet Tile", "{brand} {color} {size} {noun} ({case})",
        ("carpet tile", "carpet squares"), (), (),
        color=("Granite", "Smoke", "Ocean Blue", "Pebble"), size=("19.7 in. x 19.7 in.", "24 in. x 24 in."),
        case=("10-Pack", "15-Pack")),
    _pt("underlayment", "flooring", "Foam Underlayment for Laminate Flooring",
        "{brand} {area} {thick} {noun}",
        ("flooring underlayment", "foam underlayment"), (), (),
        area=("100 sq. ft.", "200 sq. ft.", "500 sq. ft."), thick=("2 mm", "3 mm")),
    _pt("grout", "flooring", "Sanded Grout", "{brand} {mass} {color} {noun}",
        ("sanded grout", "grout"), (), ("thinset",),
        mass=("10 lb.", "25 lb."),
        color=("Bright White", "Delorean Gray", "Charcoal", "Bone", "Sandstone")),
    _pt("thinset", "flooring", "Modified Thinset Mortar", "{brand} {mass} {color} {noun}",
        ("thinset mortar", "thinset"), ("tile adhesive",), (),
        mass=("25 lb.", "50 lb."), color=("Gray", "White")),
    # garden
    _pt("string_trimmer", "garden", "Cordless String Trimmer & Edger",
        "{brand} {volts} {width} {noun} ({kit})",
        ("string trimmer", "cordless trimmer"), ("weed eater", "weed whacker", "weed wacker"),
        ("trimmer_line",),
        1.3, volts=_GARDEN_VOLTS, width=("13 in.", "15 in.", "17 in."),
        kit=("Tool-Only", "Battery and Charger Included")),
    _pt("trimmer_line", "garden", "Twisted String Trimmer Line", "{brand} {diameter} x {length} {noun}",
        ("trimmer line", "string trimmer line"), (), (),
        diameter=("0.065 in.", "0.080 in.", "0.095 in.", "0.105 in."),
        length=("40 ft.", "200 ft.", "855 ft.")),
    _pt("leaf_blower", "garden", "Cordless Handheld Leaf Blower", "{brand} {volts} {speed} {airflow} {noun}",
        ("leaf blower", "cordless blower"), (), (),
        volts=_GARDEN_VOLTS, speed=("110 MPH", "125 MPH", "150 MPH"),
        airflow=("400 CFM", "480 CFM", "600 CFM")),
    _pt("hedge_trimmer", "garden", "Cordless Hedge Trimmer", "{brand} {volts} {blade} {noun}",
        ("hedge trimmer",), ("hedge clippers",), (),
        volts=_GARDEN_VOLTS, blade=("18 in.", "22 in.", "24 in.")),
    _pt("lawn_mower", "garden", "Walk-Behind Push Lawn Mower", "{brand} {deck} {power} {noun}",
        ("lawn mower", "push mower"), (), ("trimmer_line",), 1.2,
        deck=("20 in.", "21 in."), power=("140cc Gas", "170cc Gas", "40V Battery", "80V Battery")),
    _pt("garden_hose", "garden", "Heavy-Duty Garden Hose", "{brand} {diameter} x {length} {noun}",
        ("garden hose",), ("water hose",), ("hose_nozzle",),
        diameter=("1/2 in.", "5/8 in.", "3/4 in."), length=("25 ft.", "50 ft.", "75 ft.", "100 ft.")),
    _pt("hose_nozzle", "garden", "Metal Hose Nozzle", "{brand} {pattern} {grip} {noun}",
        ("hose nozzle",), ("hose sprayer",), (),
        pattern=("7-Pattern", "8-Pattern", "10-Pattern"),
        grip=("Front Trigger", "Rear Trigger", "Thumb Control")),
    _pt("mulch", "garden", "Dyed Hardwood Mulch", "{brand} {volume} {color} {noun}",
        ("mulch", "hardwood mulch"), (), (),
        volume=("1.5 cu. ft.", "2 cu. ft.", "3 cu. ft."), color=("Black", "Brown", "Red", "Natural")),
    _pt("weed_killer", "garden", "Grass and Weed Herbicide", "{brand} {volume} {kind} {noun}",
        ("weed herbicide", "grass herbicide"), ("weed killer", "roundup"), (),
        volume=("32 oz.", "1 gal.", "1.33 gal."), kind=("Concentrate", "Ready-to-Use")),
    _pt("pressure_washer", "garden", "Pressure Washer", "{brand} {psi} {gpm} {power} {noun}",
        ("pressure washer",), ("power washer",), ("garden_hose",),
        psi=("1800 PSI", "2000 PSI", "3100 PSI", "3400 PSI"), gpm=("1.1 GPM", "1.2 GPM", "2.4 GPM"),
        power=("Electric", "Gas", "Cold Water Gas")),
    # hardware
    _pt("wood_screw", "hardware", "Flat-Head Wood Screws",
        "{brand} {gauge} x {length} {drive} {noun} ({pack})",
        ("wood screws", "screws"), (), ("drywall_anchor",), 1.3,
        gauge=("#6", "#8", "#10"), length=("1 in.", "1-1/4 in.", "1-5/8 in.", "2 in.", "2-1/2 in.", "3 in."),
        drive=("Phillips", "Star Drive", "Square Drive"), pack=("1 lb.-Box", "5 lb.-Box", "100-Pack")),
    _pt("deck_screw", "hardware", "Exterior Coated Deck Screws",
        "{brand} {gauge} x {length} {drive} {noun} ({pack})",
        ("deck screws", "exterior screws"), (), (),
        gauge=("#8", "#9", "#10"), length=("2 in.", "2-1/2 in.", "3 in."),
        drive=("Star Drive", "Square Drive"),
        pack=("1 lb.-Box", "5 lb.-Box")),
    _pt("drywall_anchor", "hardware", "Ribbed Plastic Hollow Wall Anchors with Screws",
        "{brand} {size} {noun} ({pack})",
        ("wall anchors", "hollow wall anchors"), ("molly bolts",), (),
        size=("#6-#8", "#8-#10", "#10-#12"), pack=("10-Pack", "25-Pack", "100-Pack")),
    _pt("lag_screw", "hardware", "Zinc-Plated Hex Lag Screw", "{brand} {diameter} x {length} {noun} ({pack})",
        ("lag screw", "hex lag screw"), ("lag bolts",), (),
        diameter=("1/4 in.", "5/16 in.", "3/8 in."), length=("2 in.", "3 in.", "4 in.", "6 in."),
        pack=("1-Pack", "10-Pack", "25-Pack")),
    _pt("drawer_pull", "hardware", "Bar Drawer Pull",
        "{brand} {spacing} Center-to-Center {finish} {noun} ({pack})",
        ("drawer pull", "bar pull"), ("cabinet pulls", "cabinet handles", "drawer handles"),
        ("cabinet_knob",), 1.2,
        spacing=("3 in.", "3-3/4 in.", "5-1/16 in.", "6-5/16 in."), finish=_METAL_FINISHES,
        pack=("1-Pack", "10-Pack", "25-Pack")),
    _pt("cabinet_knob", "hardware", "Round Cabinet Knob", "{brand} {size} {finish} {noun} ({pack})",
        ("cabinet knob", "knobs"), (), (),
        size=("1-1/8 in.", "1-1/4 in.", "1-3/8 in."), finish=_METAL_FINISHES,
        pack=("1-Pack", "10-Pack", "25-Pack")),
    _pt("door_hinge", "hardware", "Door Hinge", "{brand} {size} {corner} Corner {finish} {noun} ({pack})",
        ("door hinge", "hinges"), (), ("door_lever",),
        size=("3-1/2 in.", "4 in."), corner=("Square", "1/4 in. Radius", "5/8 in. Radius"),
        finish=_METAL_FINISHES,
        pack=("1-Pack", "3-Pack", "12-Pack")),
    _pt("door_lever", "hardware", "Door Lever", "{brand} {model} {finish} {function} {noun}",
        ("door lever", "lever handle"), ("door handle", "door knob"), ("deadbolt",),
        model=("Tustin", "Hudson", "Bristow", "Avalon"), finish=_METAL_FINISHES,
        function=("Privacy Bed & Bath", "Passage Hall & Closet", "Keyed Entry")),
    _pt("deadbolt", "hardware", "Single Cylinder Deadbolt", "{brand} {finish} {noun} with {feature}",
        ("deadbolt", "deadbolt lock"), (), (),
        finish=_METAL_FINISHES, feature=("QuickKey Rekey", "Anti-Pick Pins", "Keyed Alike 2-Pack")),
    _pt("shelf_bracket", "hardware", "Steel Decorative Shelf Bracket", "{brand} {size} {color} {noun}",
        ("shelf bracket", "shelf brackets"), (), (),
        size=("6 in. x 8 in.", "8 in. x 10 in.", "10 in. x 12 in."),
        color=("Black", "White", "Oil-Rubbed Bronze")),
    # appliances
    _pt("refrigerator", "appliances", "Refrigerator", "{brand} {width} {capacity} {style} {noun} in {finish}",
        ("refrigerator", "french door refrigerator"), ("fridge",), (), 1.3,
        width=("30 in.", "33 in.", "36 in."),
        capacity=("18.1 cu. ft.", "21.8 cu. ft.", "25.5 cu. ft.", "27.8 cu. ft."),
        style=("French Door", "Side-by-Side", "Top Freezer"), finish=_APPLIANCE_FINISHES),
    _pt("dishwasher", "appliances", "Front Control Built-In Tall Tub Dishwasher",
        "{brand} 24 in. {finish} {noun} with {feature}, {noise}",
        ("dishwasher", "built in dishwasher"), (), (),
        finish=_APPLIANCE_FINISHES, feature=("Third Rack", "Stainless Steel Tub", "Hidden Heater"),
        noise=("44 dBA", "48 dBA", "52 dBA")),
    _pt("range", "appliances", "Freestanding Range",
        "{brand} 30 in. {capacity} {fuel} {noun} with {feature} in {finish}",
        ("range", "freestanding range"), ("stove",), ("microwave",),
        capacity=("5.0 cu. ft.", "5.3 cu. ft.", "6.3 cu. ft."), fuel=("Electric", "Gas", "Induction"),
        feature=("Air Fry", "Convection", "Self-Cleaning"), finish=_APPLIANCE_FINISHES),
    _pt("microwave", "appliances", "Over-the-Range Microwave",
        "{brand} 30 in. {capacity} {watts} {noun} in {finish}",
        ("over the range microwave", "microwave"), ("otr microwave",), (),
        capacity=("1.7 cu. ft.", "1.9 cu. ft.", "2.1 cu. ft."), watts=("1000-Watt", "1100-Watt"),
        finish=_APPLIANCE_FINISHES),
    _pt("washer", "appliances", "High-Efficiency Washer", "{brand} {capacity} {load} {noun} in {finish}",
        ("washer", "top load washer", "front load washer"), ("washing machine",), ("dryer",),
        capacity=("4.5 cu. ft.", "5.0 cu. ft.", "5.3 cu. ft."),
        load=("Top Load", "Front Load", "Top Load Agitator"),
        finish=("White", "Chrome Shadow", "Graphite Steel")),
    _pt("dryer", "appliances", "Dryer with Sensor Dry", "{brand} {capacity} Vented {fuel} {noun} in {finish}",
        ("electric dryer", "gas dryer", "dryer"), ("clothes dryer",), (),
        capacity=("7.0 cu. ft.", "7.4 cu. ft.", "7.8 cu. ft."), fuel=("Electric", "Gas"),
        finish=("White", "Chrome Shadow", "Graphite Steel")),
    _pt("window_ac", "appliances", "Window Air Conditioner with Remote", "{brand} {btu} 115-Volt {noun}",
        ("window air conditioner", "air conditioner"), ("window unit", "window ac"), (),
        btu=("5,000 BTU", "6,000 BTU", "8,000 BTU", "10,000 BTU", "12,000 BTU")),
    # building materials
    _pt("osb", "building", "Oriented Strand Board", "{brand} {thick} x 4 ft. x 8 ft. {grade} {noun}",
        ("oriented strand board", "strand board"), ("osb",), (),
        thick=("7/16 in.", "15/32 in.", "23/32 in."), grade=("Sheathing", "Tongue and Groove Subfloor")),
    _pt("plywood", "building", "Sanded Pine Plywood", "{brand} {thick} x 4 ft. x 8 ft. {grade} {noun}",
        ("plywood", "sanded plywood"), (), (),
        thick=("1/4 in.", "1/2 in.", "3/4 in."), grade=("BC", "CDX", "Cabinet Grade")),
    _pt("drywall", "building", "Gypsum Board", "{brand} {thick} x 4 ft. x {length} {kind} {noun}",
        ("gypsum board", "gypsum panel"), ("sheetrock", "drywall sheet"),
        ("joint_compound", "drywall_anchor"),
        thick=("1/4 in.", "1/2 in.", "5/8 in."), length=("8 ft.", "10 ft.", "12 ft."),
        kind=("Regular", "Lightweight", "Moisture-Resistant", "Fire-Resistant Type X")),
    _pt("stud", "building", "Kiln-Dried Whitewood Stud", "{brand} {dimension} x {length} {noun}",
        ("whitewood stud", "framing stud", "lumber"), (), ("wood_screw",),
        dimension=("2 in. x 4 in.", "2 in. x 6 in."), length=("92-5/8 in.", "8 ft.", "10 ft.")),
    _pt("construction_adhesive", "building", "Heavy Duty Construction Adhesive",
        "{brand} {volume} {kind} {noun}",
        ("construction adhesive",), ("liquid nails",), ("caulk_gun",),
        volume=("10 oz.", "28 oz."), kind=("Subfloor & Deck", "Paneling & Molding", "Advanced Polyurethane")),
    _pt("concrete_mix", "building", "Concrete Mix", "{brand} {mass} {kind} {noun}",
        ("concrete mix", "concrete"), ("cement mix", "bag of cement"), (),
        mass=("50 lb.", "60 lb.", "80 lb."), kind=("High-Strength", "Fast-Setting", "Crack-Resistant")),
)
# fmt: on

# Vague head queries: primary types are exact (3.0), secondary types loosely relevant (2.33).
_HEAD_QUERIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "paint": (("interior_paint", "exterior_paint"), ("spray_paint", "primer")),
    "lights": (("flush_mount", "pendant", "recessed_light"), ("shop_light", "flood_light", "string_lights")),
    "light bulbs": (("led_bulb", "br30_bulb"), ()),
    "flooring": (("lvp", "laminate"), ("ceramic_tile", "carpet_tile")),
    "faucets": (("kitchen_faucet", "bath_faucet"), ()),
    "wire": (("nm_wire", "thhn_wire"), ()),
    "power tools": (("drill", "impact_driver", "circular_saw", "recip_saw"), ()),
    "screws": (("wood_screw", "deck_screw"), ("lag_screw",)),
    "appliances": (("refrigerator", "range", "dishwasher", "washer", "dryer"), ("microwave",)),
    "door hardware": (("door_lever", "deadbolt"), ("door_hinge",)),
    "tape": (("painters_tape", "electrical_tape", "thread_tape"), ()),
    "outdoor lighting": (("flood_light", "string_lights"), ()),
    "pvc": (("pvc_pipe", "pvc_elbow", "pvc_coupling"), ("pvc_cement",)),
    "saw": (("circular_saw", "recip_saw"), ()),
    "cabinet hardware": (("drawer_pull", "cabinet_knob"), ()),
    "lawn": (("lawn_mower",), ("string_trimmer", "leaf_blower")),
}

# Common real-world misspellings; words without an entry get a random keyboard slip.
_MISSPELLINGS: dict[str, tuple[str, ...]] = {
    "elbow": ("elbo", "elbw"),
    "extension": ("extention", "extenstion"),
    "receptacle": ("receptical", "recepticle"),
    "faucet": ("facet", "faucett"),
    "toilet": ("toliet",),
    "ceiling": ("cieling", "celing"),
    "dimmer": ("dimer",),
    "connectors": ("conectors", "connecters"),
    "trimmer": ("trimer",),
    "vacuum": ("vaccum", "vacume"),
    "adhesive": ("adhesve", "adhessive"),
    "compound": ("compund",),
    "primer": ("primmer",),
    "hinge": ("hindge",),
    "refrigerator": ("refridgerator", "refrigerater"),
    "microwave": ("microwve",),
    "screws": ("scews", "screwes"),
    "laminate": ("laminite", "lamanate"),
    "pendant": ("pendent",),
    "reciprocating": ("recipricating",),
    "circular": ("circuler",),
    "mulch": ("mulsh",),
    "caulk": ("calk",),
    "sheetrock": ("sheetrok",),
    "romex": ("romax",),
    "dishwasher": ("dishwaser",),
    "plumbers": ("plumers",),
    "bulb": ("buld",),
    "light": ("lite",),
    "lights": ("lites",),
    "measure": ("messure",),
    "nozzle": ("nozle",),
    "pressure": ("presure",),
    "disposal": ("disposel",),
    "herbicide": ("herbacide",),
    "gypsum": ("gypsom",),
    "ladder": ("lader",),
    "mower": ("mowre",),
}

# Query forms for attribute values that shoppers shorten.
_VALUE_ALIASES: dict[str, tuple[str, ...]] = {
    "Fingerprint Resistant Stainless Steel": ("stainless steel", "fingerprint resistant stainless"),
    "Black Stainless Steel": ("black stainless",),
    "Oil-Rubbed Bronze": ("oil rubbed bronze", "bronze"),
    "Soft White 2700K": ("soft white", "2700k"),
    "Bright White 3000K": ("bright white", "3000k"),
    "Cool White 4000K": ("cool white", "4000k"),
    "Daylight 5000K": ("daylight", "5000k"),
    "20V MAX": ("20v", "20 volt", "20v max"),
    "1.1/1.6 GPF Dual Flush": ("dual flush",),
    "Elongated Comfort Height": ("comfort height", "elongated comfort height"),
    "3/8 in. Compression x 1/2 in. FIP": ("1/2 fip", "3/8 x 1/2"),
    "3/8 in. Compression x 7/8 in. Ballcock": ("toilet", "7/8 ballcock"),
    "1/4 in. and 3/8 in.": ("1/4 and 3/8",),
    "1/4 in., 3/8 in. and 1/2 in.": ("1/4 3/8 1/2",),
}

# Kinds of generated queries and their relative frequency.
_QUERY_KINDS: tuple[tuple[str, float], ...] = (
    ("type", 1.0),
    ("brand_type", 2.5),
    ("type_attr", 4.5),
    ("jargon", 4.0),
    ("misspelt", 3.0),
    ("head", 0.3),
)
_STOPWORDS = frozenset({"in", "and", "with", "for", "the", "of", "to", "x", "ft", "on", "one"})
_UNIT_WORDS = {
    "in.": "inch",
    "ft.": "ft",
    "gal.": "gallon",
    "oz.": "oz",
    "lb.": "lb",
    "qt.": "quart",
    "yds.": "yd",
}
_UNIT_RE = re.compile(r"\b(in|ft|gal|oz|lb|qt|yds)\.")

# --- public API ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoShop:
    """The three tables of a synthetic shop, in the Home Depot column layout."""

    catalog: pd.DataFrame  # product_uid, product_title, brand, category (str): the last two for search filters
    judgments: pd.DataFrame  # search_term (str), product_uid (str), relevance (float in [1, 3])
    unlabeled_queries: pd.DataFrame  # search_term (str): extra queries without judgments, for distillation


def make_demo_shop(n_products: int = 2000, n_queries: int = 600, n_unlabeled: int = 800, seed: int = 0) -> DemoShop:
    """Generate ``n_products`` products, ``n_queries`` judged queries and ``n_unlabeled`` unjudged ones.

    Each part draws from its own seeded stream, so the catalog does not change with the number of queries.
    """
    if n_products < 1 or n_queries < 0 or n_unlabeled < 0:
        raise ValueError("n_products must be >= 1 and query counts >= 0")
    products = _make_products(n_products, Random(f"demo-catalog-{seed}"))
    index = _ShopIndex.build(products)
    labeled = _draw_queries(index, n_queries, Random(f"demo-queries-{seed}"), exclude=set())
    judge_rng = Random(f"demo-judgments-{seed}")
    rows = [(spec.term, uid, grade) for spec in labeled for uid, grade in _judge(spec, index, judge_rng)]
    unlabeled = _draw_queries(
        index, n_unlabeled, Random(f"demo-unlabeled-{seed}"), exclude={spec.term for spec in labeled}
    )
    catalog = pd.DataFrame(
        {
            "product_uid": [p.uid for p in products],
            "product_title": [p.title for p in products],
            "brand": [p.brand for p in products],
            "category": [_TYPES_BY_KEY[p.type_key].category for p in products],
        }
    )
    judgments = pd.DataFrame(
        {
            "search_term": [r[0] for r in rows],
            "product_uid": [r[1] for r in rows],
            "relevance": pd.Series([r[2] for r in rows], dtype="float64"),
        }
    )
    return DemoShop(
        catalog=catalog,
        judgments=judgments,
        unlabeled_queries=pd.DataFrame({"search_term": [spec.term for spec in unlabeled]}),
    )


def write_demo_shop(directory: str | Path, **kwargs: int) -> dict[str, Path]:
    """Write products.csv, judgments.csv and unlabeled_queries.csv into ``directory`` (created if needed).

    Each file is written to a temporary sibling and renamed into place, so a reader never sees half a file.
    ``kwargs`` go to :func:`make_demo_shop`.
    """
    shop = make_demo_shop(**kwargs)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    targets = {
        "catalog": (directory / "products.csv", shop.catalog),
        "judgments": (directory / "judgments.csv", shop.judgments),
        "unlabeled_queries": (directory / "unlabeled_queries.csv", shop.unlabeled_queries),
    }
    for path, frame in targets.values():
        with atomic_file(path) as handle:
            frame.to_csv(handle, index=False, lineterminator="\n")
    return {name: path for name, (path, _) in targets.items()}


# --- catalog ------------------------------------------------------------------------------------------

_TYPES_BY_KEY: dict[str, _ProductType] = {t.key: t for t in _PRODUCT_TYPES}


@dataclass(frozen=True)
class _Product:
    uid: str
    type_key: str
    brand: str
    attrs: tuple[tuple[str, str], ...]  # (slot, value) in slot order
    title: str


def _make_products(n_products: int, rng: Random) -> list[_Product]:
    """Allocate products to types by weight, sample product lines per type, shuffle and number them."""
    brands = {t.key: _type_brands(t, rng) for t in _PRODUCT_TYPES}
    capacities = [len(brands[t.key]) * math.prod(len(v) for _, v in t.slots) for t in _PRODUCT_TYPES]
    quotas = _allocate(n_products, [t.weight for t in _PRODUCT_TYPES], capacities)
    drafts: list[tuple[_ProductType, str, tuple[tuple[str, str], ...]]] = []
    for ptype, quota in zip(_PRODUCT_TYPES, quotas, strict=True):
        sizes = [len(brands[ptype.key])] + [len(values) for _, values in ptype.slots]
        for combo in _sample_combos(sizes, quota, rng):
            attrs = tuple((slot, values[i]) for (slot, values), i in zip(ptype.slots, combo[1:], strict=True))
            drafts.append((ptype, brands[ptype.key][combo[0]], attrs))
    rng.shuffle(drafts)
    return [
        _Product(str(_FIRST_UID + i), ptype.key, brand, attrs, _noisy_title(_title(ptype, brand, attrs), rng))
        for i, (ptype, brand, attrs) in enumerate(drafts)
    ]


def _type_brands(ptype: _ProductType, rng: Random) -> tuple[str, ...]:
    """3-4 of the category's brands carry this type, so brand names are informative but shared."""
    pool = _BRANDS[ptype.category]
    return tuple(sorted(rng.sample(pool, min(len(pool), rng.randint(3, 4)))))


def _allocate(total: int, weights: Sequence[float], capacities: Sequence[int]) -> list[int]:
    """Split ``total`` proportionally to ``weights`` (largest remainder), never exceeding a capacity."""
    if total > sum(capacities):
        raise ValueError(f"n_products={total} exceeds the {sum(capacities)} distinct products on offer")
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    quotas = [min(int(r), c) for r, c in zip(raw, capacities, strict=True)]
    by_remainder = sorted(range(len(raw)), key=lambda i: (-(raw[i] - int(raw[i])), i))
    while sum(quotas) < total:
        for i in by_remainder:
            if sum(quotas) == total:
                break
            if quotas[i] < capacities[i]:
                quotas[i] += 1
    return quotas


def _sample_combos(sizes: Sequence[int], k: int, rng: Random) -> list[tuple[int, ...]]:
    """Pick ``k`` distinct (brand, slot...) index tuples, grown as product lines of near-duplicates.

    A base product is drawn at random, then 0-3 siblings that differ from it in exactly one attribute, which
    is how real catalogs look (one model in several sizes or finishes).
    """
    capacity = math.prod(sizes)
    if k * 2 >= capacity:
        return [_unrank(i, sizes) for i in rng.sample(range(capacity), k)]
    chosen: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    while len(chosen) < k:
        base = tuple(rng.randrange(s) for s in sizes)
        if base in seen:
            continue
        seen.add(base)
        chosen.append(base)
        for _ in range(rng.randint(0, 3)):
            dim = rng.randrange(1, len(sizes)) if len(sizes) > 1 else 0
            sibling = (*base[:dim], rng.randrange(sizes[dim]), *base[dim + 1 :])
            if len(chosen) < k and sibling not in seen:
                seen.add(sibling)
                chosen.append(sibling)
    return chosen


def _unrank(index: int, sizes: Sequence[int]) -> tuple[int, ...]:
    """Mixed-radix decode of ``index`` into one position per dimension."""
    digits = []
    for size in reversed(sizes):
        index, digit = divmod(index, size)
        digits.append(digit)
    return tuple(reversed(digits))


def _title(ptype: _ProductType, brand: str, attrs: tuple[tuple[str, str], ...]) -> str:
    return ptype.template.format(brand=brand, noun=ptype.noun, **dict(attrs))


def _noisy_title(title: str, rng: Random) -> str:
    """Feed noise seen in real catalogs: HTML-escaped ampersands and stray double spaces."""
    if "&" in title and rng.random() < 0.5:
        title = title.replace("&", "&amp;")
    if rng.random() < 0.05:
        spaces = [i for i, ch in enumerate(title) if ch == " "]
        if spaces:
            at = rng.choice(spaces)
            title = title[:at] + " " + title[at:]
    return title


# --- queries ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ShopIndex:
    """Lookups the query generator and the judge need, built once per shop."""

    products: list[_Product]
    by_type: dict[str, list[int]]
    by_brand: dict[str, list[int]]
    complements: dict[str, tuple[str, ...]]  # symmetric
    confusers: dict[str, tuple[str, ...]]  # other types whose names share a word with this one

    @classmethod
    def build(cls, products: list[_Product]) -> _ShopIndex:
        by_type: dict[str, list[int]] = {}
        by_brand: dict[str, list[int]] = {}
        for i, product in enumerate(products):
            by_type.setdefault(product.type_key, []).append(i)
            by_brand.setdefault(product.brand, []).append(i)
        related: dict[str, set[str]] = {t.key: set(t.complements) for t in _PRODUCT_TYPES}
        for t in _PRODUCT_TYPES:
            for other in t.complements:
                related[other].add(t.key)
        complements = {k: tuple(sorted(v & by_type.keys())) for k, v in related.items()}
        name_words = {t.key: _words(t.noun) for t in _PRODUCT_TYPES}
        confusers = {
            t.key: tuple(
                sorted(
                    o.key
                    for o in _PRODUCT_TYPES
                    if o.key != t.key
                    and o.key in by_type
                    and o.key not in related[t.key]
                    and (name_words[o.key] & (_words(" ".join(t.short)) | name_words[t.key]))
                )
            )
            for t in _PRODUCT_TYPES
        }
        return cls(products, by_type, by_brand, complements, confusers)


@dataclass(frozen=True)
class _QuerySpec:
    """A search term plus what it asks for, which is all the judge needs to grade any product."""

    term: str
    primary: tuple[str, ...]  # product types the query is for
    secondary: tuple[str, ...] = ()  # types loosely relevant to a vague query
    brand: str | None = None
    constraints: tuple[tuple[str, str], ...] = ()  # (slot, value) the query names
    seed: int | None = None  # index of the product the query was written from


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS and len(w) > 2}


def _draw_queries(index: _ShopIndex, n: int, rng: Random, exclude: set[str]) -> list[_QuerySpec]:
    """Draw ``n`` queries with distinct terms, none of them in ``exclude``."""
    specs: list[_QuerySpec] = []
    seen = set(exclude)
    kinds = [k for k, _ in _QUERY_KINDS]
    weights = [w for _, w in _QUERY_KINDS]
    attempts = 0
    while len(specs) < n:
        attempts += 1
        if attempts > 200 * (n + 10):
            raise ValueError(f"could not draw {n} distinct queries from this shop; ask for fewer")
        spec = _draw_query(index, rng.choices(kinds, weights)[0], rng)
        if spec is not None and spec.term not in seen:
            seen.add(spec.term)
            specs.append(spec)
    return specs


def _draw_query(index: _ShopIndex, kind: str, rng: Random) -> _QuerySpec | None:
    """One query of ``kind``, written from a random product; None when that product does not fit the kind."""
    if kind == "head":
        term = rng.choice(sorted(_HEAD_QUERIES))
        primary, secondary = _HEAD_QUERIES[term]
        primary = tuple(t for t in primary if t in index.by_type)
        secondary = tuple(t for t in secondary if t in index.by_type)
        return _QuerySpec(term, primary, secondary) if primary else None
    seed = rng.randrange(len(index.products))
    product = index.products[seed]
    ptype = _TYPES_BY_KEY[product.type_key]
    misspell = kind == "misspelt"
    if misspell:
        kind = rng.choice(("type", "brand_type", "type_attr", "jargon"))
    if kind == "jargon" and not ptype.jargon:
        return None
    phrase = rng.choice(ptype.jargon if kind == "jargon" else ptype.short)
    if misspell:
        phrase = _misspell(phrase, rng)
        if phrase is None:
            return None
    queryable = [(slot, value) for slot, value in product.attrs if slot not in _HIDDEN_SLOTS]
    n_attrs = {"type": 0, "brand_type": int(rng.random() < 0.3), "jargon": int(rng.random() < 0.6)}.get(
        kind, 1 + int(rng.random() < 0.35)
    )
    constraints = tuple(sorted(rng.sample(queryable, min(n_attrs, len(queryable)))))
    brand = product.brand if kind == "brand_type" else None
    attr_text = [_render_value(value, rng) for _, value in constraints]
    rng.shuffle(attr_text)
    parts = [brand.lower()] if brand else []
    parts += [phrase, *attr_text] if rng.random() < 0.25 else [*attr_text, phrase]
    term = " ".join(" ".join(parts).split())
    return _QuerySpec(term, (ptype.key,), brand=brand, constraints=constraints, seed=seed)


def _misspell(phrase: str, rng: Random) -> str | None:
    """Misspell one word of ``phrase``: a common real misspelling if known, else a keyboard slip."""
    words = phrase.split()
    known = [i for i, w in enumerate(words) if w in _MISSPELLINGS]
    if known:
        i = rng.choice(known)
        words[i] = rng.choice(_MISSPELLINGS[words[i]])
        return " ".join(words)
    long_words = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    if not long_words:
        return None
    i = rng.choice(long_words)
    words[i] = _slip(words[i], rng)
    return " ".join(words)


def _slip(word: str, rng: Random) -> str:
    """A typing error inside ``word`` (never the first letter): dropped, swapped or doubled letter."""
    at = rng.randrange(1, len(word) - 1)
    how = rng.randrange(3)
    if how == 0:
        return word[:at] + word[at + 1 :]
    if how == 1 and word[at] != word[at + 1]:
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    return word[:at] + word[at] + word[at:]


def _render_value(value: str, rng: Random) -> str:
    """How a shopper types an attribute value: lower case, units written several ways, aliases."""
    if value in _VALUE_ALIASES and rng.random() < 0.7:
        return rng.choice(_VALUE_ALIASES[value])
    text = value.lower()
    text = re.sub(r"(\d+)-watt equivalent", lambda m: rng.choice((f"{m[1]} watt", f"{m[1]}w", m[0])), text)
    text = re.sub(r"(\d+)-pack", lambda m: rng.choice((f"{m[1]} pack", f"{m[1]}-pack", f"{m[1]}pk")), text)
    style = rng.random()
    if style < 0.3:
        text = _UNIT_RE.sub(r"\1", text)
    elif style < 0.5:
        text = _UNIT_RE.sub(lambda m: _UNIT_WORDS[m[0]], text)
    if rng.random() < 0.3:
        text = text.replace("-", " ")
    return text


# --- judgments ----------------------------------------------------------------------------------------


def _judge(spec: _QuerySpec, index: _ShopIndex, rng: Random) -> list[tuple[str, float]]:
    """Grade 5-12 products for ``spec``: exact matches, substitutes, complements and hard negatives."""
    graded: dict[int, float] = {}
    if spec.seed is not None:
        _exact_and_substitutes(spec, index, rng, graded)
    else:
        _head_relevant(spec, index, rng, graded)
    taken_types = set(spec.primary) | set(spec.secondary)
    complement_types = sorted({c for t in spec.primary for c in index.complements[t]} - taken_types)
    if not complement_types and spec.seed is None:
        category = _TYPES_BY_KEY[spec.primary[0]].category
        complement_types = [t.key for t in _PRODUCT_TYPES if t.category == category and t.key in index.by_type]
        complement_types = [t for t in complement_types if t not in taken_types]
    for _ in range(rng.randint(0, 2) if complement_types else 0):
        i = rng.choice(index.by_type[rng.choice(complement_types)])
        graded.setdefault(i, _rater_noise(COMPLEMENT, rng))
    not_negative = taken_types | set(complement_types)
    wanted = len(graded) + max(5 - len(graded), min(rng.randint(2, 3), max(2, 12 - len(graded))))  # 5..12
    for _ in range(10 * wanted):
        if len(graded) >= wanted:
            break
        negative = _hard_negative(spec, index, not_negative, rng)
        if negative is None:  # only in a tiny shop that holds nothing but relevant types
            break
        graded.setdefault(negative, _rater_noise(IRRELEVANT, rng))
    rows = [(index.products[i].uid, grade) for i, grade in graded.items()]
    rng.shuffle(rows)
    return rows


def _exact_and_substitutes(spec: _QuerySpec, index: _ShopIndex, rng: Random, graded: dict[int, float]) -> None:
    """Products of the asked-for type, graded by how many of the query's constraints they miss."""
    same = index.by_type[spec.primary[0]]
    tiers: dict[float, list[int]] = {}
    for i in same:
        tiers.setdefault(_match_grade(index.products[i], spec), []).append(i)
    seed = spec.seed
    assert seed is not None
    graded[seed] = _rater_noise(EXACT, rng)
    exact = [i for i in tiers.get(EXACT, []) if i != seed]
    for i in rng.sample(exact, min(len(exact), rng.randint(0, 3))):
        graded[i] = _rater_noise(EXACT, rng)
    substitutes: list[int] = []
    # nearest first: near-duplicates that differ in one attribute are the hard, useful ones
    for grade in (SUBSTITUTE_BRAND, SUBSTITUTE, LOOSE_SUBSTITUTE):
        pool = tiers.get(grade, [])
        substitutes += rng.sample(pool, len(pool))
    for i in substitutes[: rng.randint(1, 4)]:
        graded[i] = _match_grade(index.products[i], spec)


def _match_grade(product: _Product, spec: _QuerySpec) -> float:
    """3.0 when brand and all named attributes match; one miss is a substitute, more a loose substitute."""
    attrs = dict(product.attrs)
    attr_misses = sum(attrs.get(slot) != value for slot, value in spec.constraints)
    brand_miss = spec.brand is not None and product.brand != spec.brand
    if attr_misses == 0:
        return SUBSTITUTE_BRAND if brand_miss else EXACT
    return SUBSTITUTE if attr_misses + brand_miss == 1 else LOOSE_SUBSTITUTE


def _head_relevant(spec: _QuerySpec, index: _ShopIndex, rng: Random, graded: dict[int, float]) -> None:
    """For a vague query: a few products of its main types (exact) and of its loosely related types."""
    for _ in range(rng.randint(2, 4)):
        graded.setdefault(rng.choice(index.by_type[rng.choice(spec.primary)]), _rater_noise(EXACT, rng))
    for _ in range(rng.randint(1, 3) if spec.secondary else 0):
        graded.setdefault(rng.choice(index.by_type[rng.choice(spec.secondary)]), SUBSTITUTE)


def _hard_negative(spec: _QuerySpec, index: _ShopIndex, excluded_types: set[str], rng: Random) -> int | None:
    """An irrelevant product that looks tempting: a type sharing words, the same brand, or the same aisle."""
    brand = spec.brand or (index.products[spec.seed].brand if spec.seed is not None else None)
    category = _TYPES_BY_KEY[spec.primary[0]].category
    for _ in range(20):
        source = rng.random()
        confusers = [t for p in spec.primary for t in index.confusers[p] if t not in excluded_types]
        if source < 0.45 and confusers:
            i = rng.choice(index.by_type[rng.choice(confusers)])
        elif source < 0.75 and brand is not None:
            i = rng.choice(index.by_brand[brand])
        elif source < 0.9:
            same_aisle = [t.key for t in _PRODUCT_TYPES if t.category == category and t.key in index.by_type]
            i = rng.choice(index.by_type[rng.choice(same_aisle)])
        else:
            i = rng.randrange(len(index.products))
        if index.products[i].type_key not in excluded_types:
            return i
    return next((i for i, p in enumerate(index.products) if p.type_key not in excluded_types), None)


def _rater_noise(grade: float, rng: Random) -> float:
    """Averaged rater grades are not perfectly clean: sometimes one of three raters disagreed."""
    roll = rng.random()
    if grade == EXACT and roll < 0.1:
        return SUBSTITUTE_BRAND
    if grade == COMPLEMENT and roll < 0.25:
        return 1.33 if roll < 0.15 else LOOSE_SUBSTITUTE
    if grade == IRRELEVANT and roll < 0.08:
        return 1.33
    return grade
